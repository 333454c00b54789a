"""Configs from outside are data until trusted: a static allow-list check of a bundle's config files.

MONAI builds a bundle by running its configs: every ``_target_`` is imported and called, every ``"$..."`` string is
given to Python's ``eval`` (advisory GHSA-873f-pvrv-4x83), ``%file#key`` reads another file, and ``run`` puts the
bundle folder on ``sys.path``. :func:`check_bundle_configs` reads every config file of a bundle as plain data (JSON
or YAML, nothing parsed into objects, nothing imported from the bundle) and refuses the bundle unless

- every ``_target_``, every name a ``$`` expression uses, every ``$import`` and every plain string that spells a
  dotted Python name resolves into an allowed package: :data:`DEFAULT_MODULES` (this project, MONAI, PyTorch,
  Ignite), plus the few standard-library names of :data:`STDLIB_NAMES`, plus what the user trusts explicitly
  (``--trust_module mypkg``, ``trust_modules=("mypkg",)`` or :func:`trusting`);
- no name leads to one of the escape hatches of those packages (:data:`DENIED`: loaders of code or pickles, other
  configs, downloads, subprocesses), to a module re-exported from elsewhere (``torch.os``), or to a module itself;
- a ``$`` expression is one Python expression (or one ``import``) built only from allowed names, the safe builtins of
  :data:`SAFE_BUILTINS`, literals, operators, comprehensions and lambdas, and references to other config ids
  (``@id`` is read as a name); attributes that start with ``_`` (``__class__``, ``__globals__``...), ``eval``,
  ``exec``, ``open``, ``getattr``, ``__import__`` and walrus assignments are refused;
- ``%`` macros stay inside the config (``%file#key`` reads a file MONAI resolves against the working directory);
- ``_mode_`` is not ``debug`` (a debugger), no ``weights_only: false``, ``allow_pickle: true`` or
  ``trust_remote_code: true``; ``logging.conf`` names only ``logging`` handlers/formatters with literal arguments;
- the bundle holds no Python code (``.py``, ``.pyc``, ``.so``...: ``monai.bundle run`` puts the bundle folder on
  ``sys.path``, where a ``nibabel.py`` would shadow the real package) and no links.

A refusal names the file, the config id, the value and the fix, and happens before anything of the bundle runs. The
check is static and trusts the public API of the allowed packages beyond :data:`DENIED`: it is no sandbox, it stops
a config from naming code outside them. Where allowed components write their outputs is the config's business.
"""

from __future__ import annotations

import ast
import builtins
import configparser
import contextlib
import functools
import importlib
import importlib.util
import json
import re
import types
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .integrity import IntegrityError

__all__ = [
    "DEFAULT_MODULES",
    "STDLIB_NAMES",
    "STDLIB_IMPORTS",
    "SAFE_BUILTINS",
    "DENIED",
    "CODE_SUFFIXES",
    "UntrustedConfigError",
    "AllowList",
    "allow_list",
    "trusting",
    "check_config",
    "check_logging_config",
    "check_bundle_configs",
]

DEFAULT_MODULES: tuple[str, ...] = ("monai_seq2seq", "monai", "torch", "ignite")
"""Packages whose public names a config may use."""

STDLIB_NAMES: frozenset[str] = frozenset({"os.environ", "os.environ.get"})
"""Standard-library names a config may use (``multi_gpu_train.json`` reads ``os.environ['LOCAL_RANK']``)."""

STDLIB_IMPORTS: frozenset[str] = frozenset({"os"})
"""Standard-library modules a config may ``$import`` (only :data:`STDLIB_NAMES` of them may then be used)."""

SAFE_BUILTINS: frozenset[str] = frozenset(
    "abs all any bool dict divmod enumerate filter float frozenset int isinstance iter len list map max min next "
    "pow print range reversed round set slice sorted str sum tuple zip".split()
)
"""Builtins an expression may call; ``eval``, ``exec``, ``open``, ``getattr``, ``__import__``, ``type``... are not."""

DENIED: tuple[str, ...] = (
    "monai.bundle",  # a config that parses, runs, loads or downloads another config
    "monai.utils.module",  # optional_import, instantiate, locate, load_submodules: a name given as a string
    "monai.utils.misc.run_cmd",
    "monai.apps.utils",  # download_url, extractall
    "monai.apps.datasets",
    "monai.apps.mmars",
    "monai.apps.tcia",
    "monai.apps.auto3dseg",  # runs bundles and subprocesses, unpickles
    "monai.apps.nnunet",
    "monai.auto3dseg",
    "monai.fl",
    "monai.data.utils.pickle_operations",
    "torch.load",
    "torch.serialization",
    "torch.hub",
    "torch.package",
    "torch.ops",
    "torch.classes",
    "torch.library",
    "torch.jit.load",
    "torch.jit._serialization",
    "torch.export",
    "torch.fx",
    "torch.utils.cpp_extension",
    "torch.utils.benchmark",
    "torch.utils.collect_env",
    "torch.utils.bottleneck",
    "torch.utils.model_zoo",
    "torch.utils.show_pickle",
    "torch.multiprocessing",
    "torch.distributed.run",
    "torch.distributed.launch",
    "torch.distributed.launcher",
    "torch.distributed.elastic",
    "torch.distributed.rpc",
)
"""Names inside the allowed packages that load code, pickles or other configs, download, or start processes."""

CODE_SUFFIXES: frozenset[str] = frozenset({".py", ".pyc", ".pyo", ".pyd", ".pyw", ".so", ".dylib", ".dll", ".pth"})
"""Files a bundle may not hold (importable code), unless they belong to a trusted module."""

_DENIED_ATTRIBUTES = frozenset(
    {"format", "format_map", "mro", "gi_frame", "gi_code", "cr_frame", "ag_frame", "tb_frame", "f_globals"}
)
_DANGEROUS_VALUES = {"weights_only": False, "allow_pickle": True, "trust_remote_code": True}
_MODES = {"default", "callable", "partial"}
_MONAI_GLOBALS = {"monai": "monai", "torch": "torch", "np": "numpy", "numpy": "numpy"}  # ConfigParser's defaults
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
_REF = re.compile(r"@\w*(?:(?:::|#)\w*)*")
_REF_NAME = "seq2seq_ref_"
_DATA = (int, float, complex, str, bytes, bool, tuple, list, dict, set, frozenset, type(None))
_FILE_SUFFIXES = frozenset("json yaml yml conf ini txt md csv log pt pth ts onnx nii gz npy npz h5 zip png jpg".split())
_BUILTIN_STRINGS = frozenset(
    (
        "eval exec compile open breakpoint input exit quit help __import__ getattr setattr delattr globals locals vars"
    ).split()
)
_FIX = (
    "the bundle was refused before anything in it was built or run; if you trust its code, pass "
    "--trust_module <package> (trust_modules=... in Python)"
)
_EXTRA: ContextVar[tuple[str, ...]] = ContextVar("seq2seq_trusted_modules", default=())


class UntrustedConfigError(IntegrityError):
    """A bundle's config names code outside the allow-list; the message names the file, the id and the value."""


@dataclass(frozen=True)
class AllowList:
    """Packages whose names a config may use, the standard-library names it may use and import.

    Args:
        modules: allowed packages (a name and everything below it, e.g. ``"monai"``), dotted names allowed.
        names: exact standard-library names an expression may use (``"os.environ"``).
        imports: standard-library modules a config may ``$import``.
    """

    modules: tuple[str, ...] = DEFAULT_MODULES
    names: frozenset[str] = STDLIB_NAMES
    imports: frozenset[str] = STDLIB_IMPORTS

    def trusts(self, dotted: str) -> bool:
        """Whether ``dotted`` is an allowed package or lies below one."""
        return any(dotted == m or dotted.startswith(m + ".") for m in self.modules)

    def extended(self, modules: Iterable[str]) -> AllowList:
        """This allow-list with more trusted packages."""
        extra = tuple(m for m in modules if m and m not in self.modules)
        return AllowList(self.modules + extra, self.names, self.imports)


def _as_modules(modules: str | Iterable[str] | None) -> tuple[str, ...]:
    if modules is None:
        return ()
    if isinstance(modules, str):
        modules = modules.replace(",", " ").split()
    names = tuple(str(m).strip() for m in modules if str(m).strip())
    bad = [m for m in names if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", m)]
    if bad:
        raise ValueError(f"--trust_module takes Python package names (e.g. mypkg), got {bad}.")
    return names


def allow_list(trust_modules: str | Iterable[str] | None = None) -> AllowList:
    """The default allow-list, plus the packages trusted by :func:`trusting` and ``trust_modules``.

    Args:
        trust_modules: more packages to trust (a name, a comma-separated string or a list), e.g. ``"mypkg"``.
    """
    return AllowList().extended(_EXTRA.get() + _as_modules(trust_modules))


@contextlib.contextmanager
def trusting(trust_modules: str | Iterable[str] | None) -> Iterator[AllowList]:
    """Within the block, every check also trusts ``trust_modules`` (the bundle runner's ``--trust_module``, so that a
    ``VerifiedCheckpointLoader`` inside the run sees what the command line trusted)."""
    token = _EXTRA.set(_EXTRA.get() + _as_modules(trust_modules))
    try:
        yield allow_list()
    finally:
        _EXTRA.reset(token)


def _matches(dotted: str, prefixes: Iterable[str]) -> str | None:
    return next((p for p in prefixes if dotted == p or dotted.startswith(p + ".")), None)


def _home(obj: Any) -> str | None:
    """Where an object really lives: a module's name, a class's or function's module, an instance's class module;
    ``None`` for plain data (numbers, strings, containers)."""
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    if isinstance(obj, _DATA):
        return None
    if isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        return f"{module}.{name}" if module and name else module
    owner = getattr(obj, "__objclass__", None)  # a method of a C class (torch.Tensor.add)
    return getattr(owner, "__module__", None) if owner is not None else type(obj).__module__


@functools.lru_cache(maxsize=4096)
def _walk(dotted: str) -> tuple[Any, tuple[tuple[str, str | None], ...]] | None:
    """Import the first part of ``dotted`` and follow its attributes: ``(object, ((prefix, home), ...))``, or ``None``
    when it does not resolve. Called only for names inside an allowed package (their code is trusted)."""
    parts = dotted.split(".")
    try:
        obj = importlib.import_module(parts[0])
    except ImportError:
        return None
    steps = [(parts[0], _home(obj))]  # (prefix, where the object lives)
    for i, attr in enumerate(parts[1:], start=2):
        prefix = ".".join(parts[:i])
        if _matches(prefix, DENIED):  # never import a denied submodule
            steps.append((prefix, prefix))
            return obj, tuple(steps)
        if not hasattr(obj, attr) and isinstance(obj, types.ModuleType):
            with contextlib.suppress(ImportError):
                importlib.import_module(prefix)
        if not hasattr(obj, attr):
            return None
        obj = getattr(obj, attr)
        steps.append((prefix, _home(obj)))
    return obj, tuple(steps)


def _name_problem(dotted: str, allow: AllowList, value: bool = True, strict: bool = True) -> str | None:
    """Why ``dotted`` may not be used (``None``: it may).

    Args:
        dotted: a dotted Python name (aliases already replaced by what they import).
        allow: the allow-list.
        value: the name is used as a value (called, passed, stored): a module itself is refused.
        strict: a name that does not resolve is refused (``False`` for plain strings, which may just be text).
    """
    parts = dotted.split(".")
    if any(p.startswith("_") for p in parts):
        return "private and dunder names are refused"
    if dotted in allow.names:
        return None
    if not allow.trusts(parts[0]) and not allow.trusts(dotted):
        return f"{parts[0]!r} is not an allowed package ({', '.join(allow.modules)})"
    walked = _walk(dotted)
    if walked is None:
        return f"{dotted!r} does not exist in an allowed package" if strict else None
    obj, steps = walked
    for prefix, home in steps:
        denied = _matches(prefix, DENIED) or (home and _matches(home, DENIED))
        if denied:
            return f"{prefix!r} leads to {denied!r}, which loads code, pickles or configs, downloads or runs processes"
        if home and allow.trusts(prefix) and not allow.trusts(home):  # re-exported from elsewhere (torch.os)
            return f"{prefix!r} is {home!r}, outside the allowed packages"
    if value and isinstance(obj, types.ModuleType):
        return f"{dotted!r} is a module; a config may use what a module holds, not the module itself"
    return None


class _Refusal(Exception):
    """Internal: a reason, turned into an :class:`UntrustedConfigError` with the file and id."""


class _ExpressionChecker(ast.NodeVisitor):
    """Walks one ``$`` expression; raises :class:`_Refusal` at the first node that is not allowed."""

    _NODES = (
        ast.Expression,
        ast.Constant,
        ast.Name,
        ast.Attribute,
        ast.Call,
        ast.keyword,
        ast.Subscript,
        ast.Slice,
        ast.List,
        ast.Tuple,
        ast.Set,
        ast.Dict,
        ast.BinOp,
        ast.UnaryOp,
        ast.BoolOp,
        ast.Compare,
        ast.IfExp,
        ast.ListComp,
        ast.SetComp,
        ast.DictComp,
        ast.GeneratorExp,
        ast.comprehension,
        ast.Lambda,
        ast.arguments,
        ast.arg,
        ast.Starred,
        ast.JoinedStr,
        ast.FormattedValue,
        ast.expr_context,
        ast.operator,
        ast.unaryop,
        ast.cmpop,
        ast.boolop,
    )

    def __init__(self, allow: AllowList, aliases: dict[str, set[str]]) -> None:
        self.allow = allow
        self.aliases = aliases
        self.local: set[str] = set()

    def check(self, tree: ast.Expression) -> None:
        for node in ast.walk(tree):  # names bound by comprehensions and lambdas, and every node type
            if not isinstance(node, self._NODES):
                raise _Refusal(f"{type(node).__name__} is not allowed in a config expression")
            for name in self._bound(node):
                if name in self.aliases or name in _MONAI_GLOBALS or hasattr(builtins, name) or name[:1] == "_":
                    raise _Refusal(f"the local name {name!r} would shadow a global or builtin name")
                self.local.add(name)
        self.visit(tree)

    @staticmethod
    def _bound(node: ast.AST) -> list[str]:
        if isinstance(node, ast.arg):
            return [node.arg]
        if isinstance(node, ast.comprehension):
            return [n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)]
        return []

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain, base = [node.attr], node.value
        while isinstance(base, ast.Attribute):
            chain.insert(0, base.attr)
            base = base.value
        if isinstance(base, ast.Name) and self._global(base.id):
            self._check_global(base.id, chain)
            return
        for attr in chain:
            if attr.startswith("_") or attr in _DENIED_ATTRIBUTES:
                raise _Refusal(f"the attribute {attr!r} is refused")
        self.visit(base)

    def visit_Name(self, node: ast.Name) -> None:
        if self._global(node.id):
            self._check_global(node.id, [])

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            problem = _string_problem(node.value, self.allow)
            if problem:
                raise _Refusal(problem)

    def visit_keyword(self, node: ast.keyword) -> None:
        if node.arg is None:
            raise _Refusal("** keyword splats are refused (they hide the argument names)")
        if node.arg in _DANGEROUS_VALUES and not _safe_literal(node.arg, node.value):
            raise _Refusal(f"{node.arg} must be the literal {not _DANGEROUS_VALUES[node.arg]}")
        self.generic_visit(node)

    def _global(self, name: str) -> bool:
        return name not in self.local and not name.startswith(_REF_NAME)

    def _check_global(self, name: str, chain: list[str]) -> None:
        if name in SAFE_BUILTINS and name not in self.aliases:
            if any(a.startswith("_") or a in _DENIED_ATTRIBUTES for a in chain):
                raise _Refusal(f"the attribute {'.'.join(chain)!r} of {name!r} is refused")
            return
        targets = self.aliases.get(name) or ({_MONAI_GLOBALS[name]} if name in _MONAI_GLOBALS else set())
        if not targets:
            raise _Refusal(f"the name {name!r} is not allowed (not an import of an allowed package nor a safe builtin)")
        for target in sorted(targets):
            dotted = ".".join([target, *chain])
            problem = _name_problem(dotted, self.allow)
            if problem:
                raise _Refusal(problem)


def _safe_literal(key: str, node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is (not _DANGEROUS_VALUES[key])


@functools.lru_cache(maxsize=1024)
def _importable(root: str) -> bool:
    try:
        return importlib.util.find_spec(root) is not None
    except (ImportError, ValueError):
        return False


def _string_problem(text: str, allow: AllowList) -> str | None:
    """A plain string that spells a dotted Python name outside the allow-list (MONAI's readers, writers and mergers
    ``locate`` such strings), or the name of a builtin that is harmful when looked up and called."""
    if text in _BUILTIN_STRINGS:
        return f"the string {text!r} names a builtin that a component would look up and call"
    if not _DOTTED.match(text) or text.rpartition(".")[2].lower() in _FILE_SUFFIXES:
        return None
    root = text.split(".")[0]
    if allow.trusts(root) or text in allow.names:
        return _name_problem(text, allow, value=False, strict=False)
    if _importable(root):
        return f"the string {text!r} names code in {root!r}, not an allowed package"
    return None


def _imports(value: str) -> list[tuple[str, str]] | None:
    """``[(alias, dotted)]`` of a ``$import`` / ``$from ... import`` string, ``None`` when it is no import."""
    try:
        tree = ast.parse(value[1:])
    except SyntaxError:
        return None
    node = tree.body[0] if tree.body else None
    if isinstance(node, ast.Import):
        return [(a.asname or a.name, a.name) for a in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            return [(a.asname or a.name, "." * node.level) for a in node.names]
        return [(a.asname or a.name, f"{node.module}.{a.name}") for a in node.names]
    return None


def _check_import(value: str, allow: AllowList) -> None:
    tree = ast.parse(value[1:])
    if len(tree.body) != 1:
        raise _Refusal("an import expression must hold exactly one import statement")
    for _, dotted in _imports(value) or []:
        if dotted.startswith("."):
            raise _Refusal("relative imports are refused")
        if dotted in allow.imports:
            continue
        problem = _name_problem(dotted, allow, value=False)
        if problem:
            raise _Refusal(problem)


def _check_expression(value: str, allow: AllowList, aliases: dict[str, set[str]]) -> None:
    if _imports(value) is not None:
        _check_import(value, allow)
        return
    counter = iter(range(1 << 30))
    text = _REF.sub(lambda _: f"{_REF_NAME}{next(counter)}", value[1:])
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise _Refusal(f"not one Python expression ({err.msg})") from None
    _ExpressionChecker(allow, aliases).check(tree)


def _check_macro(value: str) -> None:
    from monai.bundle import ConfigParser

    path, _ = ConfigParser.split_path_id(value[1:])
    if path:
        raise _Refusal(
            f"the macro reads the file {path!r}: a config may only take pieces of itself (%id), never of another file"
        )


@functools.lru_cache(maxsize=1024)
def _monai_component(name: str) -> str | None:
    """``module.name`` of a short ``_target_`` as MONAI resolves it (the first monai module that defines it)."""
    import monai  # noqa: F401  (MONAI looks among the monai modules imported, i.e. all of them once monai is)
    from monai.bundle.config_item import ComponentLocator

    module = ComponentLocator().get_component_module_name(name)
    if isinstance(module, list):
        module = module[0]
    return None if module is None else f"{module}.{name}"


def _check_target(value: Any, allow: AllowList, aliases: dict[str, set[str]]) -> None:
    if not isinstance(value, str):
        return
    if value.startswith("$"):
        _check_expression(value, allow, aliases)
        return
    if value.startswith(("@", "%")):
        raise _Refusal("a _target_ must name a class or function, not a reference or macro")
    dotted = value if "." in value else _monai_component(value)
    if dotted is None:
        raise _Refusal(f"{value!r} is no MONAI component; MONAI would look it up as a builtin or module")
    problem = _name_problem(dotted, allow)
    if problem:
        raise _Refusal(problem)


def _check_string(key: str, value: str, allow: AllowList, aliases: dict[str, set[str]], meta: bool) -> None:
    if key == "_mode_" and value not in _MODES:
        raise _Refusal(f"_mode_ must be one of {sorted(_MODES)}")
    if value.startswith("$"):
        _check_expression(value, allow, aliases)
    elif value.startswith("%"):
        _check_macro(value)
    elif not meta and key != "_desc_" and not value.startswith("@"):
        problem = _string_problem(value, allow)
        if problem:
            raise _Refusal(problem)


def _items(data: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """``(id, key, value)`` of every leaf and container of a config, ids as MONAI writes them (``a#b#0``)."""
    pairs = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in pairs:
        item_id = f"{path}#{key}" if path else str(key)
        yield item_id, str(key), value
        yield from _items(value, item_id)


def _collect_aliases(configs: Iterable[Any]) -> dict[str, set[str]]:
    aliases: dict[str, set[str]] = {}
    for data in configs:
        for _, _, value in _items(data):
            if isinstance(value, str) and value.startswith("$") and "import" in value:
                for alias, dotted in _imports(value) or []:
                    aliases.setdefault(alias, set()).add(dotted)
    return aliases


def check_config(
    data: Any,
    source: str,
    allow: AllowList | None = None,
    aliases: dict[str, set[str]] | None = None,
    meta: bool = False,
) -> None:
    """Check one parsed config file (plain JSON/YAML data, nothing instantiated).

    Args:
        data: the file's content.
        source: the file, for messages.
        allow: the allow-list (default: :func:`allow_list`).
        aliases: names bound by ``$import`` anywhere in the bundle (default: those of ``data``).
        meta: ``metadata.json``: free text is not read as names, only ``$``/``%`` strings and ``_target_``.

    Raises:
        UntrustedConfigError: the first id whose value is not allowed, named with the file and the value.
    """
    allow = allow or allow_list()
    aliases = _collect_aliases([data]) if aliases is None else aliases
    for item_id, key, value in _items(data):
        try:
            if key == "_target_":
                _check_target(value, allow, aliases)
            elif key in _DANGEROUS_VALUES and value is not (not _DANGEROUS_VALUES[key]):
                raise _Refusal(f"{key} must be the literal {str(not _DANGEROUS_VALUES[key]).lower()}")
            elif isinstance(value, str):
                _check_string(key, value, allow, aliases, meta)
        except _Refusal as reason:
            raise UntrustedConfigError(f"{source}: {item_id} = {_short(value)}: {reason}; {_FIX}.") from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def check_logging_config(path: str | Path) -> None:
    """``logging.conf``: ``class`` only ``logging``/``logging.handlers`` handlers and formatters, ``args``/``kwargs``
    literals (``sys.stdout``/``sys.stderr`` allowed); ``logging.config.fileConfig`` evaluates both.

    Raises:
        UntrustedConfigError: the section, option and value that would run code.
    """
    import logging
    import logging.handlers

    parser = configparser.RawConfigParser()
    try:
        parser.read_string(Path(path).read_text())
    except (configparser.Error, UnicodeDecodeError) as err:
        raise UntrustedConfigError(f"{path}: not a readable logging config ({err}); {_FIX}.") from None
    for section in parser.sections():
        for option in ("class", "args", "kwargs"):
            value = parser.get(section, option, fallback="").strip()
            if not value:
                continue
            if option == "class":
                module, _, name = value.rpartition(".")
                home = {"": logging, "logging": logging, "logging.handlers": logging.handlers}.get(module)
                found = getattr(home, name, None) if home else None
                ok = isinstance(found, type) and issubclass(found, (logging.Handler, logging.Formatter))
            else:
                ok = _literal(value)
            if not ok:
                raise UntrustedConfigError(
                    f"{path}: [{section}] {option} = {value!r}: logging.config evaluates it; only logging handler "
                    f"and formatter classes and literal arguments are allowed; {_FIX}."
                )


def _literal(text: str) -> bool:
    """Literals, and ``sys.stdout`` / ``sys.stderr``."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return False
    literal = (ast.Expression, ast.Constant, ast.Tuple, ast.List, ast.Dict, ast.Load, ast.UnaryOp, ast.unaryop)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and ast.unparse(node) not in ("sys.stdout", "sys.stderr"):
            return False
        if not isinstance(node, (*literal, ast.Attribute)) and not (isinstance(node, ast.Name) and node.id == "sys"):
            return False
    return True


def _load(path: Path) -> Any:
    try:
        if path.suffix == ".json":
            return json.loads(path.read_text())
        return yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as err:
        raise UntrustedConfigError(f"{path}: not a readable config file ({err}); {_FIX}.") from None


def _check_files(bundle: Path, allow: AllowList) -> None:
    """No links, no importable code (unless it belongs to a trusted module)."""
    for path in sorted(bundle.rglob("*")):
        relative = path.relative_to(bundle)
        if path.is_symlink():
            raise UntrustedConfigError(f"{path}: a link inside a bundle is refused (it may point anywhere); {_FIX}.")
        if path.is_file() and (path.suffix.lower() in CODE_SUFFIXES or relative.parts[0] == "__pycache__"):
            top = relative.parts[0].split(".")[0]
            if not allow.trusts(top):
                raise UntrustedConfigError(
                    f"{path}: a bundle may not hold Python code (MONAI puts the bundle folder on sys.path, where "
                    f"{relative.parts[0]!r} would be imported); {_FIX}."
                )


def check_bundle_configs(bundle_dir: str | Path, trust_modules: str | Iterable[str] | None = None) -> list[Path]:
    """Check every config file of a bundle before anything is parsed into objects (see the module docstring).

    Reads ``configs/**/*.json|yaml|yml`` (``metadata.json`` as metadata) and ``configs/**/*.conf`` (logging), and
    looks at every file for links and Python code.

    Args:
        bundle_dir: the bundle folder.
        trust_modules: packages to trust beyond the default allow-list (``"mypkg"``, ``["a", "b"]``).

    Returns:
        The config files checked.

    Raises:
        UntrustedConfigError: what is refused, named with the file, the config id and the value, and the fix.
    """
    bundle = Path(bundle_dir)
    allow = allow_list(trust_modules)
    _check_files(bundle, allow)
    folder = bundle / "configs"
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".json", ".yaml", ".yml") and p.is_file())
    loaded = [(path, _load(path)) for path in files]
    aliases = _collect_aliases(data for _, data in loaded)
    for path, data in loaded:
        check_config(data, str(path), allow, aliases, meta=path.name == "metadata.json")
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".conf", ".ini") and p.is_file()):
        check_logging_config(path)
        files.append(path)
    return files
