"""Every example in README.md and docs/*.md runs and prints what its page says (issue 33).

Python blocks (```python) are found and run by pytest-examples. The blocks of one page
run in order, each with the names the blocks before it defined, as a reader runs them one
after another. A ``#>`` comment under a ``print`` is what that print writes, compared
exactly; floating-point values are printed at the precision their tolerance gives, so they
are stable from run to run. ``pytest tests/test_doc_examples.py --update-examples`` writes
what the code prints now into the pages, so no number on a page is typed by hand.

Command lines of ``flatscape`` (or ``python -m flatscape.flatness``) in ```bash blocks,
and ``$ `` lines in output blocks, run in-process in a scratch folder, with the page's
flags and values, on files the test makes at the paths the page names (USER_FILES: what a
reader brings, such as a ResNet-18 checkpoint), with CLI_OVERRIDES (and CLI_FEWER_HVPS where
no printed number is compared) appended. Every ``--option`` on a page must be one of the
command's, spelled out. An output block (an unlabelled fence after
a paragraph that starts with "prints", or the lines after a ``$ `` line) is compared line by
line with what the command prints, spaces collapsed and the wall-clock time left out.

A block the test cannot run as written says why in an HTML comment on the line before its
fence, which the site does not show:

* ``<!-- doc-test: skip: REASON -->``: not run; the ``flatscape`` options of its command
  lines are still checked against the command's parser.
* ``<!-- doc-test: smaller: REASON -->``: a Python block that runs with the keyword values
  in SMALLER in place of the page's (each must be found on the page).
* ``<!-- doc-test: numbers-masked: REASON -->``: a command's output whose numbers come from
  a file the test does not have; every number (and yes/no) is masked, the rest compared.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import importlib.util
import io
import re
import shlex
import sys
import tarfile
import tomllib
from pathlib import Path

import numpy as np
import pytest
from pytest_examples import CodeExample, EvalExample, find_examples

from conftest import REPO

pytestmark = pytest.mark.usefixtures("one_thread")

PAGES = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))

FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)
MARKER = re.compile(r"<!--\s*doc-test:\s*(?P<kind>[a-z-]+):\s*(?P<reason>.+?)\s*-->", re.S)
MARKER_KINDS = ("skip", "smaller", "numbers-masked")

SMALLER = {
    # docs/ch2_bias_reading.md "Reproduce": the full grid runs for many minutes on 2 cores
    "num_signals": 400,
    "h_values": (64,),
    "p_values": (0.1,),
    "num_points": 3,
    "max_iter": 20,
}
"""Keyword values for ``smaller`` blocks, in every call that passes the keyword."""

CLI_OVERRIDES = ("--device", "cpu", "--no-progress")
"""Appended to every command run here (the last of a repeated option wins)."""
CLI_FEWER_HVPS = ("--max-hvp", "3")
"""Appended too where no number the command prints is compared (no output on the page, or
``numbers-masked``): a few HVPs of each eigenvalue of the test's random network suffice."""


@dataclasses.dataclass
class Block:
    """One fenced block of a page."""

    page: Path
    line: int  # of the opening fence, from 1
    lang: str
    body: str
    before: str  # the page's text between the previous fence and this one
    marker: tuple[str, str] | None  # (kind, reason) of a doc-test comment on the line before

    def __str__(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def page_blocks(page: Path) -> list[Block]:
    text = page.read_text()
    blocks, end = [], 0
    for m in FENCE.finditer(text):
        before = text[end : m.start()]
        last = before.rstrip().splitlines()[-1].strip() if before.strip() else ""
        marker = MARKER.fullmatch(last)
        blocks.append(Block(page, text.count("\n", 0, m.start()) + 1, m["lang"].strip().lower(), m["body"], before,
                            (marker["kind"], marker["reason"]) if marker else None))  # fmt: skip
        end = m.end()
    return blocks


def _is_output(block: Block) -> bool:
    """An unlabelled block after a paragraph that starts with "prints": the output of the block before it."""
    return block.lang == "" and MARKER.sub("", block.before).strip().lower().startswith("prints")


BLOCKS = {page: page_blocks(page) for page in PAGES}
EXAMPLES = [example for page in PAGES for example in find_examples(page)]


def _id(example: CodeExample) -> str:
    return f"{example.path.relative_to(REPO)}:{example.start_line}"


def _block_of(example: CodeExample) -> Block:
    return next(b for b in BLOCKS[example.path] if b.line == example.start_line)


def test_every_python_block_is_collected_and_every_marker_is_known():
    python = [str(b) for blocks in BLOCKS.values() for b in blocks if b.lang.startswith("py")]
    assert python == [_id(e) for e in EXAMPLES]
    for blocks in BLOCKS.values():
        for b in blocks:
            last = b.before.rstrip().splitlines()[-1:]
            assert b.marker or not (last and "doc-test" in last[0]), f"{b}: unreadable doc-test marker {last}"
            assert b.marker is None or b.marker[0] in MARKER_KINDS, f"{b}: unknown doc-test marker {b.marker}"
    assert sum(b.marker is not None and b.marker[0] == "skip" for bs in BLOCKS.values() for b in bs) <= 5


def test_every_output_block_belongs_to_a_command_or_python_block():
    outputs = [c.output_block for c in COMMANDS if c.output_block is not None]
    for blocks in BLOCKS.values():
        for b in blocks:
            if _is_output(b):
                assert any(o is b for o in outputs), f"{b}: an output block after no command; use #> under a print"


# --- Python blocks ---------------------------------------------------------------------------

_AFTER: dict[str, dict] = {}
"""The names each example left defined, for the next block of its page."""


@pytest.fixture(autouse=True)
def _keep_main_module():
    """pytest-examples runs an example as ``__main__`` and leaves it there; a later test that
    spawns processes (torch.multiprocessing) would have each child run the example again."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


def _smaller(example: CodeExample) -> CodeExample:
    tree = ast.parse(example.source)
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg in SMALLER:
                    kw.value = ast.parse(repr(SMALLER[kw.arg]), mode="eval").body
                    used.add(kw.arg)
    assert used == set(SMALLER), f"{_id(example)}: SMALLER names {sorted(set(SMALLER) - used)}, not on the page"
    return dataclasses.replace(example, source=ast.unparse(ast.fix_missing_locations(tree)) + "\n")


def _run(example: CodeExample, eval_example: EvalExample, *, check: bool = True) -> dict:
    """Run ``example`` after its page's earlier blocks; with ``check``, compare its prints."""
    examples = [e for e in EXAMPLES if e.path == example.path]
    i = next(i for i, e in enumerate(examples) if e.start_line == example.start_line)
    if i == 0:
        names = {}
    elif _id(examples[i - 1]) in _AFTER:
        names = _AFTER[_id(examples[i - 1])]
    else:
        names = _run(examples[i - 1], eval_example, check=False)
    marker = _block_of(example).marker
    raised = None
    try:
        if marker and marker[0] == "smaller":
            assert "#>" not in example.source, f"{_id(example)}: a smaller block's prints cannot match the page's"
            after = eval_example.run(_smaller(example), module_globals=names)
        elif check and eval_example.update_examples:
            after = eval_example.run_print_update(example, module_globals=names)
        elif check:
            after = eval_example.run_print_check(example, module_globals=names)
        else:
            after = eval_example.run(example, module_globals=names)
    except Exception as exc:  # a mismatched print fails by pytest.fail, which is no Exception
        raised = _raised(example, exc)
    if raised:  # outside the except: pytest cannot draw the exception even as the failure's context
        pytest.fail(raised, pytrace=False)
    _AFTER[_id(example)] = {**names, **after}
    return _AFTER[_id(example)]


def _raised(example: CodeExample, exc: Exception) -> str:
    """The error an example raised, with where on its page. pytest cannot draw the traceback
    pytest-examples gives the exception (frames it rewrites to the page's lines): its report
    ends in an INTERNALERROR that stops the whole run, so the test fails with this text instead."""
    where, tb = [], exc.__traceback__
    while tb is not None:
        where.append(f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}")
        tb = tb.tb_next
    return f"{_id(example)}: {type(exc).__name__}: {exc}\n  at " + "\n  at ".join(where)


@pytest.mark.parametrize("example", EXAMPLES, ids=_id)
def test_python_example(example: CodeExample, eval_example: EvalExample):
    marker = _block_of(example).marker
    if marker and marker[0] == "skip":
        pytest.skip(f"{_id(example)}: {marker[1]}")
    _run(example, eval_example)


# --- command lines ---------------------------------------------------------------------------


@dataclasses.dataclass
class Command:
    block: Block
    launcher: tuple[str, ...]  # ("flatscape",), ("python", "-m", "flatscape.flatness"), ("torchrun", ...)
    argv: list[str]
    output: str | None = None  # what the page says it prints
    output_block: Block | None = None  # the block that holds it

    def __str__(self) -> str:
        return f"{self.block} {self.launcher[0]}"


PLACEHOLDERS = {"...same model and data...": ("model", "data")}
"""A placeholder on a page -> the option groups it stands for, taken from the command above it."""


def _split(line: str) -> tuple[tuple[str, ...], list[str]] | None:
    """(the launcher, the command's arguments) of a line that runs flatscape, else None."""
    for placeholder in PLACEHOLDERS:
        line = line.replace(placeholder, shlex.quote(placeholder))
    tokens = shlex.split(line, comments=True)
    if tokens[:1] == ["flatscape"]:
        return ("flatscape",), tokens[1:]
    for i in range(len(tokens) - 1):
        if tokens[i : i + 2] == ["-m", "flatscape.flatness"]:
            return tuple(tokens[: i + 2]), tokens[i + 2 :]
    return None


def page_commands(page: Path) -> list[Command]:
    commands: list[Command] = []
    blocks = BLOCKS[page]
    for k, block in enumerate(blocks):
        body = block.body.replace("\\\n", " ")
        if block.lang in ("bash", "sh", "shell", "console"):
            found = [Command(block, *split) for line in body.splitlines() if (split := _split(line))]
            follows = blocks[k + 1] if k + 1 < len(blocks) else None
            if found and follows and _is_output(follows):
                found[-1].output, found[-1].output_block = follows.body, follows
            commands += found
        elif block.lang == "":
            parts = re.split(r"^\$ ", body, flags=re.M)
            for part in parts[1:]:
                line, _, output = part.partition("\n")
                if split := _split(line):
                    commands.append(Command(block, *split, output, block))
    return commands


COMMANDS = [command for page in PAGES for command in page_commands(page)]


def _parser():
    from flatscape.flatness.cli import _parser as parser

    return parser()


def _options_of_groups(titles: tuple[str, ...] | None = None) -> set[str]:
    """The option strings of the parser's groups ``titles`` (all with None)."""
    groups = [g for g in _parser()._action_groups if titles is None or g.title in titles]
    return {o for g in groups for a in g._group_actions for o in a.option_strings}


def _check_options(command: Command, argv: list[str]) -> None:
    """Each ``--option`` on the page is one of the command's, spelled out (argparse would take a prefix)."""
    options = _options_of_groups()
    unknown = [t for t in argv if t.startswith("--") and t.split("=")[0] not in options]
    assert not unknown, f"{command}: not options of flatscape: {unknown}"


def _resolve(command: Command) -> list[str]:
    """The command's arguments with each placeholder replaced by the earlier command's options it names."""
    argv: list[str] = []
    for token in command.argv:
        if token not in PLACEHOLDERS:
            argv.append(token)
            continue
        earlier = [c for c in COMMANDS[: COMMANDS.index(command)] if c.block.page == command.block.page]
        assert earlier, f"{command}: {token} but no command above it"
        source = _resolve(earlier[-1])
        wanted = _options_of_groups(PLACEHOLDERS[token])
        for i, t in enumerate(source):
            if t in wanted:
                argv += [t, *([source[i + 1]] if i + 1 < len(source) and not source[i + 1].startswith("--") else [])]
    return argv


def _check_launcher(command: Command) -> None:
    launcher = command.launcher
    if launcher == ("flatscape",):
        scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
        assert scripts["flatscape"] == "flatscape.flatness.cli:main"
    else:
        assert Path(launcher[0]).name in ("python", "python3") and len(launcher) == 3, f"{command}: mark it skip"
        assert importlib.util.find_spec("flatscape.flatness.__main__") is not None


def _jpeg(rng: np.random.Generator) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _cifar_jpeg_tar(path: Path) -> None:
    """CIFAR-10's JPEG copy as the imagefolder_tar source reads it, 13 train and 1 test image a class, 8x8."""
    from flatscape.core.datasets import CIFAR10_CLASSES

    rng = np.random.default_rng(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tf:
        for split, per_class in (("train", 13), ("test", 1)):
            for name in CIFAR10_CLASSES:
                for j in range(per_class):
                    data = _jpeg(rng)
                    info = tarfile.TarInfo(f"cifar10-jpeg/{split}/{name}/{j:04d}.jpg")
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))


def _resnet18(path: Path) -> None:
    import torch
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), path)


USER_FILES = {
    "resnet18_cifar10.pt": _resnet18,
    "../shared/data/cifar10-jpeg/cifar10-jpeg-q75.tar.gz": _cifar_jpeg_tar,
}
"""Files a reader brings, as the pages name them (relative to the folder the commands run in)."""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("doc-commands") / "work"
    work.mkdir()
    for name, make in USER_FILES.items():
        make(work / name)
    return work


_OUTPUTS: dict[tuple[str, ...], str] = {}


def _masked(command: Command) -> bool:
    marker = command.output_block.marker if command.output_block else None
    return marker is not None and marker[0] == "numbers-masked"


def run_command(command: Command, workdir: Path, monkeypatch) -> str:
    """What the command prints on stdout, run as the page writes it in ``workdir``."""
    from flatscape.flatness.cli import main

    _check_launcher(command)
    argv = _resolve(command)
    _check_options(command, argv)
    argv += [*CLI_OVERRIDES, *(CLI_FEWER_HVPS if command.output is None or _masked(command) else ())]
    for option in ("--weights", "--data-path", "--data"):
        if option in argv:
            value = argv[argv.index(option) + 1]
            file = value.partition(":")[2] if option == "--data" else value
            assert not file or (workdir / file).exists(), f"{command}: {option} {value}: add it to USER_FILES"
    key = tuple(argv)
    if key not in _OUTPUTS:
        monkeypatch.chdir(workdir)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(argv)
        assert rc == 0, f"{command}: exit {rc}\n{err.getvalue()}"
        _OUTPUTS[key] = out.getvalue()
    return _OUTPUTS[key]


NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")


def comparable(text: str, *, mask_numbers: bool) -> list[str]:
    """Lines with spaces collapsed, the wall-clock time (a last line "N s") left out, numbers masked if asked."""
    lines = [" ".join(line.split()) for line in text.strip().splitlines()]
    if lines and re.fullmatch(r"\d+(\.\d+)? s", lines[-1]):
        lines[-1] = "# s"
    if mask_numbers:
        lines = [re.sub(r"\b(yes|NO)\b", "#", NUMBER.sub("#", line)) for line in lines]
    return lines


def check_output(command: Command, printed: str) -> None:
    masked = _masked(command)
    assert comparable(printed, mask_numbers=masked) == comparable(command.output, mask_numbers=masked), str(command)


def _command_id(command: Command) -> str:
    same_block = [c for c in COMMANDS if c.block is command.block]
    return f"{command}" + (f"-{same_block.index(command) + 1}" if len(same_block) > 1 else "")


@pytest.mark.parametrize("command", COMMANDS, ids=_command_id)
def test_command_line(command: Command, workdir: Path, monkeypatch):
    marker = command.block.marker
    if marker and marker[0] == "skip":
        _check_options(command, command.argv)
        pytest.skip(f"{command.block}: {marker[1]}")
    printed = run_command(command, workdir, monkeypatch)
    if command.output is not None:
        check_output(command, printed)


# --- the test fails when a page and the code part ------------------------------------------------


def _edit(example: CodeExample, old: str, new: str) -> CodeExample:
    assert old in example.source, old
    return dataclasses.replace(example, source=example.source.replace(old, new, 1))


def test_an_edited_example_fails(eval_example: EvalExample, workdir: Path, monkeypatch):
    """A printed value, an argument name or a function name changed on a page fails the check."""
    readme = next(e for e in EXAMPLES if e.path.name == "README.md")
    printed = re.search(r"^#> (.*)$", readme.source, re.M)[1]
    digit = re.search(r"\d", printed)
    wrong = printed[: digit.start()] + str((int(digit[0]) + 1) % 10) + printed[digit.end() :]
    with pytest.raises(pytest.fail.Exception, match="Print output changed code"):
        eval_example.run_print_check(_edit(readme, f"#> {printed}", f"#> {wrong}"))
    with pytest.raises(TypeError, match="batch_sizes"):
        eval_example.run(_edit(readme, "batch_size=", "batch_sizes="))
    with pytest.raises(ImportError, match="riemannian_spectral_nrm"):
        eval_example.run(_edit(readme, "riemannian_spectral_norm", "riemannian_spectral_nrm"))

    command = next(c for c in COMMANDS if c.output is not None)
    renamed = dataclasses.replace(command, argv=[a.replace("--top-k", "--top-kk") for a in command.argv])
    assert renamed.argv != command.argv
    with pytest.raises(AssertionError, match="not options of flatscape: .'--top-kk'"):
        run_command(renamed, workdir, monkeypatch)
    printed_cli = run_command(command, workdir, monkeypatch)
    check_output(command, printed_cli)
    label = dataclasses.replace(command, output=command.output.replace("spectral norm (lambda_max)", "spectral radius"))
    with pytest.raises(AssertionError):
        check_output(label, printed_cli)
