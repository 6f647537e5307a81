"""The README's "Coming from PyTorch" table: a row for every torch.nn.LSTM argument, each answered.

The table cannot drift silently: a constructor argument torch adds, a row
without an answer, or a method the table says lstm-c lacks (or has) that the
code has (or lacks) fails here.
"""
import inspect
import re
from pathlib import Path

import pytest

import lstm_c

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Coming from PyTorch"
# torch 2.x's nn.LSTM constructor, for where torch is not installed
TORCH_LSTM_ARGS = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
                   "bidirectional", "proj_size", "device", "dtype")
ANSWERS = ("yes", "no: ")

if not README.exists():
    pytest.skip("needs the source tree (README.md)", allow_module_level=True)


def _tables():
    """The section's Markdown tables, each a list of rows (lists of cells), header first."""
    text = README.read_text(encoding="utf-8")
    assert text.count(SECTION + "\n") == 1, f"README.md has no single {SECTION!r} section"
    body = text.split(SECTION + "\n", 1)[1].split("\n## ", 1)[0]
    tables, current = [], []
    for line in body.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r"-+", c) for c in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def _torch_table():
    table = _tables()[0]
    assert table[0] == ["torch.nn.LSTM", "lstm-c"], table[0]
    return table[1:]


def _names(cell):
    """The identifiers in a cell's code spans: '`forward(input, hx)`' -> forward, input, hx."""
    return {name for span in re.findall(r"`([^`]*)`", cell)
            for name in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", span)}


def _covered():
    return set().union(*(_names(row[0]) for row in _torch_table()))


def test_every_torch_lstm_argument_has_a_row():
    missing = [a for a in TORCH_LSTM_ARGS if a not in _covered()]
    assert not missing, f"README {SECTION}: no row for torch.nn.LSTM's {missing}"


def _torch_constructor_args(torch):
    """torch.nn.LSTM's constructor arguments, from its signature.

    nn.LSTM.__init__ is ``(self, *args, **kwargs)`` in torch 2.x: the real list is
    RNNBase.__init__'s without ``mode`` (LSTM fills it in), which the first line
    of LSTM's docstring spells out too.
    """
    def named(fn, skip=("self",)):
        return [p.name for p in inspect.signature(fn).parameters.values()
                if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in skip]

    args = named(torch.nn.LSTM.__init__)
    if not args:
        args = named(torch.nn.RNNBase.__init__, skip=("self", "mode"))
    doc = re.match(r"\s*__init__\(([^)]*)\)", torch.nn.LSTM.__doc__ or "")
    if doc:
        args += [a.split("=")[0].strip() for a in doc.group(1).split(",")]
    return list(dict.fromkeys(a for a in args if a))


def test_every_argument_of_the_installed_torch_has_a_row():
    torch = pytest.importorskip("torch")
    args = _torch_constructor_args(torch)
    assert set(TORCH_LSTM_ARGS) <= set(args), args   # the signature was read
    missing = [a for a in args if a not in _covered()]
    assert not missing, (f"README {SECTION}: torch {torch.__version__}'s nn.LSTM takes "
                         f"{missing}, which have no row")
    forward = [p for p in inspect.signature(torch.nn.LSTM.forward).parameters if p != "self"]
    assert set(forward) <= _covered(), f"no row for forward's {forward}"


def test_every_row_is_answered():
    for table in _tables():
        for row in table[1:]:
            assert len(row) == 2 and row[0] and row[1], row
    for thing, answer in _torch_table():
        assert answer.startswith(ANSWERS), \
            f"{thing}: {answer!r} is neither 'yes...' nor 'no: <reason>'"
        if answer.startswith("no: "):
            assert len(answer) > len("no: ") + 10, f"{thing}: say why not"


def test_yes_and_no_methods_match_the_code():
    # `name()` rows: "yes" means LSTM has the method; "no" means it has not
    m = lstm_c.LSTM(3, 4)
    for thing, answer in _torch_table():
        methods = [s[:-2] for s in re.findall(r"`([A-Za-z_]+\(\))`", thing)]
        for name in methods:
            if answer.startswith("yes"):
                assert callable(getattr(m, name, None)), f"the README says lstm-c has {name}()"
            elif answer.startswith("no: "):
                assert not hasattr(m, name), f"the README says lstm-c has no {name}(), it has"


def test_extras_table_names_lstm_c_only_features():
    extras = _tables()[1]
    assert extras[0][0] == "lstm-c"
    firsts = " ".join(row[0] for row in extras[1:])
    for feature in ("lengths=", "mask=", "return_cells", "forget_bias", "freeze()",
                    'backend="numpy"', "from_torch", "to_keras", "to_onnx", "peephole",
                    "recurrent_dropout"):
        assert feature in firsts, feature
