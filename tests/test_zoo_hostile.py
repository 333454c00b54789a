"""Hostile bundles and archives, tried as an attacker would, on every route the project owns.

Each case starts from a tiny valid bundle (a tiny Seq2Seq, its weights recorded in ``large_files.yml``) and changes
one thing. Every case asserts the refusal message, that every file and folder under ``bundle_dir`` (two installed
bundles) is exactly as before, and that no code ran: the payloads create a marker file, which must not exist.
Routes: ``seq2seq zoo install`` and ``download`` (archives), ``seq2seq zoo verify`` and ``load``, the bundle runner
behind ``synthesize/diffmap/evaluate``, ``VerifiedCheckpointLoader`` with a ``bundle_dir``, Hugging Face downloads.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import shutil
import stat
import struct
import tempfile
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

from monai_seq2seq.cli.zoo import Zoo
from monai_seq2seq.core.integrity import IntegrityError, record_hash, sha256_file
from monai_seq2seq.core.trust import UntrustedConfigError, check_bundle_configs, check_config
from monai_seq2seq.zoo import build_zoo_seq2seq, download_bundle, update_index

ROOT = Path(__file__).resolve().parents[1]
BRAIN_META = json.loads((ROOT / "bundles" / "seq2seq_brain" / "configs" / "metadata.json").read_text())
LOGGING = (ROOT / "bundles" / "seq2seq_brain" / "configs" / "logging.conf").read_text()


# ---- the tiny valid bundle and its archive ------------------------------------------------------------------------
def make_bundle(root: Path, name: str = "tiny_a", version: str = "1.0.0") -> Path:
    """A valid bundle: a tiny Seq2Seq (4 brain sequences), verified weights, metadata passing the schema."""
    bundle = root / name
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").mkdir()
    (bundle / "docs").mkdir()
    (bundle / "LICENSE").write_text("Apache-2.0\n")
    (bundle / "docs" / "README.md").write_text(f"# {name}\n")
    (bundle / "configs" / "logging.conf").write_text(LOGGING)
    inference = {
        "imports": ["$import torch", "$import monai_seq2seq"],
        "bundle_root": ".",
        "device": "$torch.device('cpu')",
        "output_dir": "$@bundle_root + '/eval'",
        "protocol": "brain",
        "network_def": {
            "_target_": "monai_seq2seq.zoo.build_zoo_seq2seq",
            "name": "tiny",
            "variant": "C",
            "protocol": "@protocol",
            "default_target": "T2",
        },
        "network": "$@network_def.to(@device)",
        "inferer": {"_target_": "SimpleInferer"},
        "run": ["$@network.eval()"],
    }
    (bundle / "configs" / "inference.json").write_text(json.dumps(inference, indent=2))
    meta = {**BRAIN_META, "name": name, "version": version, "changelog": {version: "tiny test bundle"}}
    (bundle / "configs" / "metadata.json").write_text(json.dumps(meta, indent=2))
    (bundle / "models" / "model.pt").write_bytes(_weights())
    record_hash(bundle, url="https://example.org/tiny.pt")
    return bundle


@functools.lru_cache(maxsize=1)
def _weights() -> bytes:
    """The tiny network's state dict, as ``torch.save`` writes it (built once)."""
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.save(build_zoo_seq2seq("tiny", protocol="brain").state_dict(), buffer)
    return buffer.getvalue()


def edit_config(bundle: Path, change, file: str = "inference.json") -> None:
    path = bundle / "configs" / file
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def tree(folder: Path) -> dict[str, str]:
    """Every file (sha256) and folder under ``folder``, hidden ones included."""
    out = {}
    for path in sorted(folder.rglob("*")):
        key = path.relative_to(folder).as_posix()
        out[key] = "<dir>" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def world(tmp_path):
    """``bundle_dir`` with two installed bundles, a source folder for hostile bundles, and the marker path."""
    bundle_dir = tmp_path / "bundles"
    make_bundle(bundle_dir, "tiny_a")
    make_bundle(bundle_dir, "tiny_b")
    (bundle_dir / "tiny_a" / "eval").mkdir()
    (bundle_dir / "tiny_a" / "eval" / "previous_output.txt").write_text("results of an earlier run")
    marker = tmp_path / "pwned"
    return {"bundle_dir": bundle_dir, "src": tmp_path / "src", "marker": marker, "tmp": tmp_path}


def refused(world, exception, match: str, call) -> None:
    """``call()`` raises ``exception`` matching ``match``; nothing under ``bundle_dir`` changed; no payload ran."""
    before = tree(world["bundle_dir"])
    with pytest.raises(exception, match=match):
        call()
    assert tree(world["bundle_dir"]) == before
    assert not world["marker"].exists(), "the hostile payload ran"


def release(world, bundle: Path) -> tuple[Path, Path]:
    """Zip every file of ``bundle`` (as an attacker would, not through the packer and its checks) into
    ``<name>_v<version>.zip`` beside a model_info.json listing it with its sha256."""
    version = json.loads((bundle / "configs" / "metadata.json").read_text())["version"]
    archive = world["tmp"] / "release" / f"{bundle.name}_v{version}.zip"
    archive.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(bundle.rglob("*")):
            if path.is_file():
                zf.write(path, f"{bundle.name}/{path.relative_to(bundle).as_posix()}")
    return archive, write_index(archive.parent, archive)


def write_index(folder: Path, archive: Path, index_entry: dict | None = None, files: bool = True) -> Path:
    """``folder/model_info.json`` listing ``archive`` (with per-file hashes when ``files``); ``index_entry`` edits."""
    index = folder / "model_info.json"
    if files:
        update_index(index, archive)
    else:  # a hostile archive: the entry a malicious index would carry (update_index checks the archive itself)
        key = archive.name.removesuffix(".zip")
        name, _, version = key.rpartition("_v")
        entry = {"name": name, "version": version, "source": archive.name, "sha256": sha256_file(archive)}
        index.write_text(json.dumps({key: entry}))
    if index_entry:
        data = json.loads(index.read_text())
        data[archive.name.removesuffix(".zip")].update(index_entry)
        index.write_text(json.dumps(data))
    return index


def raw_archive(world, members: list[tuple[zipfile.ZipInfo | str, bytes]], name: str = "tiny_a_v1.0.0.zip") -> Path:
    """A hand-built archive (zipfile warns about duplicate names: that is the point)."""
    path = world["tmp"] / "release" / name
    path.parent.mkdir(exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for info, data in members:
                zf.writestr(info, data)
    return path


def valid_members(world, name: str = "tiny_a") -> list[tuple[str, bytes]]:
    bundle = make_bundle(Path(tempfile.mkdtemp(dir=world["tmp"])), name)
    return [
        (f"{name}/{p.relative_to(bundle).as_posix()}", p.read_bytes()) for p in sorted(bundle.rglob("*")) if p.is_file()
    ]


def install(world, archive: Path, index: Path | None, **kwargs):
    return Zoo().install(
        str(archive), bundle_dir=str(world["bundle_dir"]), index=index and str(index), overwrite=True, **kwargs
    )


def download(world, archive: Path, index: Path, **kwargs):
    name = archive.name.rpartition("_v")[0]
    return download_bundle(name, bundle_dir=world["bundle_dir"], index=str(index), overwrite=True, **kwargs)


# ---- hostile configs, on every route ------------------------------------------------------------------------------
def _touch(marker: Path) -> str:
    return f"touch {marker}"


CONFIG_CASES = {
    "os_system_target": (
        lambda b, m: edit_config(b, lambda c: c.update(network_def={"_target_": "os.system", "command": _touch(m)})),
        r"inference.json: network_def#_target_ = 'os.system': 'os' is not an allowed package",
    ),
    "dunder_import": (
        lambda b, m: edit_config(
            b, lambda c: c["network_def"].update(name=f"$__import__('os').system('{_touch(m)}') and 'tiny'")
        ),
        r"inference.json: network_def#name = .*__import__.*: the name '__import__' is not allowed",
    ),
    "requires": (
        lambda b, m: edit_config(
            b, lambda c: c["network_def"].update(_requires_=f"$__import__('os').system('{_touch(m)}')")
        ),
        r"inference.json: network_def#_requires_ = .*the name '__import__' is not allowed",
    ),
    "output_dir_evaluated_first": (  # the bundle runner resolves output_dir before the run
        lambda b, m: edit_config(b, lambda c: c.update(output_dir=f"$__import__('os').system('{_touch(m)}')")),
        r"inference.json: output_dir = .*the name '__import__' is not allowed",
    ),
    "macro_outside_file": (
        lambda b, m: (
            (b.parent / "evil.json").write_text(json.dumps({"net": {"_target_": "os.system", "command": _touch(m)}})),
            edit_config(b, lambda c: c.update(network_def=f"%{b.parent / 'evil.json'}#net")),
        ),
        r"inference.json: network_def = '%.*evil.json#net': the macro reads the file",
    ),
    "reexported_os": (
        lambda b, m: edit_config(b, lambda c: c.update(device=f"$torch.os.system('{_touch(m)}')")),
        r"inference.json: device = .*'torch.os' is 'os', outside the allowed packages",
    ),
    "optional_import": (
        lambda b, m: edit_config(
            b, lambda c: c.update(device=f"$monai.utils.optional_import('os')[0].system('{_touch(m)}')")
        ),
        r"inference.json: device = .*leads to 'monai.utils.module'",
    ),
    "module_in_a_reference": (
        lambda b, m: edit_config(b, lambda c: c.update(m="$torch", device=f"$@m.hub.load('{m}', 'x')")),
        r"inference.json: m = '\$torch': 'torch' is a module",
    ),
    "reader_string": (
        lambda b, m: edit_config(
            b,
            lambda c: c.update(
                load={
                    "_target_": "LoadImaged",
                    "keys": "x",
                    "reader": "subprocess.check_call",
                    "args": ["touch", str(m)],
                }
            ),
        ),
        r"inference.json: load#reader = 'subprocess.check_call': the string .* names code in 'subprocess'",
    ),
    "debug_mode": (
        lambda b, m: edit_config(b, lambda c: c["network_def"].update(_mode_="debug")),
        r"inference.json: network_def#_mode_ = 'debug'",
    ),
    "weights_only_false": (
        lambda b, m: edit_config(
            b,
            lambda c: c.update(
                cache={"_target_": "monai.data.PersistentDataset", "data": [], "cache_dir": ".", "weights_only": False}
            ),
        ),
        r"inference.json: cache#weights_only = False: weights_only must be the literal true",
    ),
    "metadata_expression": (
        lambda b, m: edit_config(
            b, lambda c: c.update(description=f"$__import__('os').system('{_touch(m)}')"), "metadata.json"
        ),
        r"metadata.json: description = .*the name '__import__' is not allowed",
    ),
    "yaml_config": (
        lambda b, m: (b / "configs" / "extra.yaml").write_text(f"x:\n  _target_: os.system\n  command: {_touch(m)}\n"),
        r"extra.yaml: x#_target_ = 'os.system'",
    ),
    "logging_conf_eval": (
        lambda b, m: (b / "configs" / "logging.conf").write_text(
            LOGGING.replace("args=(sys.stdout,)", f"args=(__import__('os').system('{_touch(m)}'),)")
        ),
        r"logging.conf: \[handler_consoleHandler\] args = .*logging.config evaluates it",
    ),
    "python_module_shadowing_a_package": (
        lambda b, m: (b / "nibabel.py").write_text(f"open({str(m)!r}, 'w').write('pwned')\n"),
        r"nibabel.py: a bundle may not hold Python code",
    ),
}
ROUTES = ("install", "download", "verify", "load", "runner", "checkpoint_loader")


def _hostile(world, case: str, root: Path | None = None) -> Path:
    bundle = make_bundle(root or world["src"], "tiny_a")
    CONFIG_CASES[case][0](bundle, world["marker"])
    return bundle


def _place(world, bundle: Path) -> Path:
    """A hostile folder copied into ``bundle_dir`` (as a user might have unpacked it), tree recorded after."""
    target = world["bundle_dir"] / "tiny_a"
    shutil.rmtree(target)
    shutil.copytree(bundle, target)
    return target


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_hostile_config_is_refused_on_every_route(world, case, route):
    from monai_seq2seq.cli.bundle import run_bundle_config
    from monai_seq2seq.engines import VerifiedCheckpointLoader

    bundle = _hostile(world, case)
    match = CONFIG_CASES[case][1]
    if route in ("install", "download"):
        archive, index = release(world, bundle)
        call = (
            (lambda: install(world, archive, index))
            if route == "install"
            else (lambda: download(world, archive, index))
        )
    else:
        placed = _place(world, bundle)
        calls = {
            "verify": lambda: Zoo().verify(str(placed)),
            "load": lambda: Zoo().load("tiny_a", bundle_dir=str(world["bundle_dir"])),
            "runner": lambda: run_bundle_config(placed, "inference"),
            "checkpoint_loader": lambda: VerifiedCheckpointLoader(
                placed / "models" / "model.pt", build_zoo_seq2seq("tiny", protocol="brain"), bundle_dir=placed
            )(),
        }
        call = calls[route]
    refused(world, UntrustedConfigError, match, call)


def test_the_tiny_bundle_itself_passes_every_route(world):
    """The control: without a payload the same routes succeed, and the installs replace only tiny_a."""
    from monai_seq2seq.cli.bundle import run_bundle_config
    from monai_seq2seq.engines import VerifiedCheckpointLoader

    bundle = make_bundle(world["src"], "tiny_a", "1.0.1")
    archive, index = release(world, bundle)
    other = tree(world["bundle_dir"] / "tiny_b")
    assert install(world, archive, index) == str(world["bundle_dir"] / "tiny_a")
    assert tree(world["bundle_dir"] / "tiny_a") == tree(bundle)  # eval/ of the previous install went with it
    assert json.loads(Zoo().verify(str(world["bundle_dir"] / "tiny_a"), index=str(index), archive=str(archive)))[
        "index"
    ] == {"entry": "tiny_a_v1.0.1", "files": 7, "archive": sha256_file(archive)}
    assert "ZooSeq2Seq" in Zoo().load("tiny_a", bundle_dir=str(world["bundle_dir"]))
    download(world, archive, index)
    assert tree(world["bundle_dir"] / "tiny_b") == other
    placed = world["bundle_dir"] / "tiny_a"
    assert run_bundle_config(placed, "inference").endswith("eval")
    network = build_zoo_seq2seq("tiny", protocol="brain")
    VerifiedCheckpointLoader(placed / "models" / "model.pt", network, bundle_dir=placed)()
    assert not [p for p in world["bundle_dir"].iterdir() if p.name.startswith(".")]


def test_trust_module_extends_the_allow_list_explicitly(world):
    bundle = make_bundle(world["src"], "tiny_a")
    edit_config(bundle, lambda c: c.update(when="$json.dumps([1])", imports=[*c["imports"], "$import json"]))
    with pytest.raises(UntrustedConfigError, match=r"'json' is not an allowed package.*--trust_module"):
        check_bundle_configs(bundle)
    assert check_bundle_configs(bundle, trust_modules="json")
    assert check_bundle_configs(bundle, trust_modules=["json", "mypkg"])
    with pytest.raises(ValueError, match="Python package names"):
        check_bundle_configs(bundle, trust_modules="json; rm -rf /")
    # the bundle runner takes the flag, and the loader inside its run trusts what the command line trusted
    from monai_seq2seq.cli.bundle import run_bundle_config

    with pytest.raises(UntrustedConfigError, match="json"):
        run_bundle_config(bundle, "inference")
    assert run_bundle_config(bundle, "inference", trust_module="json").endswith("eval")


# ---- hostile archives ---------------------------------------------------------------------------------------------
class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def _tampered_weights(world):
    bundle = make_bundle(world["src"], "tiny_a")
    data = bytearray((bundle / "models" / "model.pt").read_bytes())
    data[-100] ^= 0xFF
    (bundle / "models" / "model.pt").write_bytes(bytes(data))
    return bundle, r"model.pt has sha256 .* corrupted or was replaced"


def _malicious_pickle(world):
    bundle = make_bundle(world["src"], "tiny_a")
    torch.save({"w": _Evil(world["marker"])}, bundle / "models" / "model.pt")
    record_hash(bundle)  # the hash matches: only weights_only stops it
    return bundle, r"model.pt is no plain state dict loadable with torch.load\(weights_only=True\)"


def _metadata_contradicts_index(world):
    bundle = make_bundle(world["src"], "tiny_a", "1.0.0")
    archive, _ = release(world, bundle)
    renamed = archive.with_name("tiny_a_v0.9.0.zip")
    archive.rename(renamed)
    (renamed.parent / "model_info.json").unlink()  # the index will list it as 0.9.0 only
    return renamed, r"metadata.json says version '1.0.0', the index entry says '0.9.0'"


def _metadata_names_another_bundle(world):
    bundle = make_bundle(world["src"], "tiny_a")
    edit_config(bundle, lambda m: m.update(name="tiny_b"), "metadata.json")
    return bundle, r"metadata.json names bundle 'tiny_b', not 'tiny_a'"


@pytest.mark.parametrize("route", ("install", "download"))
@pytest.mark.parametrize(
    "make", [_tampered_weights, _malicious_pickle, _metadata_contradicts_index, _metadata_names_another_bundle]
)
def test_a_bundle_that_fails_verification_never_reaches_bundle_dir(world, make, route):
    made, match = make(world)
    if made.suffix == ".zip":
        archive, index = made, write_index(made.parent, made)
    else:
        archive, index = release(world, made)
    call = (lambda: install(world, archive, index)) if route == "install" else (lambda: download(world, archive, index))
    refused(world, IntegrityError, match, call)


def test_wrong_bundle_under_overwrite_deletes_nothing(world):
    """An archive holding tiny_b, published as tiny_a: refused before extraction; tiny_a and tiny_b stay."""
    archive, _ = release(world, make_bundle(world["src"], "tiny_b"))
    disguised = archive.with_name("tiny_a_v1.0.0.zip")
    archive.rename(disguised)
    index = write_index(disguised.parent, disguised)
    for call in (lambda: install(world, disguised, index), lambda: download(world, disguised, index)):
        refused(world, IntegrityError, r"holds bundle 'tiny_b', not the requested 'tiny_a': nothing was", call)
    refused(
        world,
        IntegrityError,
        r"holds bundle 'tiny_b', not the requested 'tiny_a'",
        lambda: Zoo().install(str(disguised), bundle_dir=str(world["bundle_dir"]), overwrite=True),
    )


def _member(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = mode << 16
    return info


def _patch(archive: Path, member: str, local: int, central: int, fmt: str, value: int) -> None:
    """Overwrite a field of ``member``'s local header (at offset ``local``) and central record (``central``)."""
    data = bytearray(archive.read_bytes())
    name = member.encode()
    for signature, offset, name_at in ((b"PK\x03\x04", local, 30), (b"PK\x01\x02", central, 46)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            if data[start + name_at : start + name_at + len(name)] == name:
                struct.pack_into(fmt, data, start + offset, value)
            start += 4
    archive.write_bytes(bytes(data))


ARCHIVE_CASES = {
    "duplicate_member_tampered_second_copy": (
        lambda w, ms: ms + [(n, d + b"\n{}") for n, d in ms if n.endswith("inference.json")],
        r"'tiny_a/configs/inference.json' is there twice",
    ),
    "duplicate_differing_in_case": (
        lambda w, ms: ms + [("tiny_a/license", b"x")],
        r"'tiny_a/license' is there twice",
    ),
    "zip_bomb_by_ratio": (
        lambda w, ms: ms + [("tiny_a/docs/zeros.bin", bytes(8 << 20))],
        r"'tiny_a/docs/zeros.bin' expands \d+ times .*zip bomb",
    ),
    "too_many_members": (
        lambda w, ms: ms + [(f"tiny_a/docs/page{i}.md", b"x") for i in range(1000)],
        r"has 1007 members, more than the limit of 1000",
    ),
    "symlink": (
        lambda w, ms: ms + [(_member("tiny_a/configs/train.json", 0o120777), b"/etc/passwd")],
        r"'tiny_a/configs/train.json' is a link",
    ),
    "zip_slip": (
        lambda w, ms: ms + [("tiny_a/../../evil.txt", b"x")],
        r"'tiny_a/../../evil.txt' would escape",
    ),
    "absolute_path": (
        lambda w, ms: ms + [("/tmp/tiny_a/evil.txt", b"x")],
        r"'/tmp/tiny_a/evil.txt' would escape",
    ),
    "backslash_path": (
        lambda w, ms: ms + [("tiny_a\\..\\..\\evil.txt", b"x")],
        r"would escape the target folder or is not a plain relative path",
    ),
    "special_file": (
        lambda w, ms: ms + [(_member("tiny_a/fifo", stat.S_IFIFO | 0o644), b"")],
        r"'tiny_a/fifo' is a special file",
    ),
    "encrypted_member": (
        lambda w, ms: ms + [("tiny_a/docs/secret.md", b"x")],  # flag bit set after writing (_ENCRYPT)
        r"'tiny_a/docs/secret.md' is encrypted",
    ),
    "hidden_top_folder": (
        lambda w, ms: [(".staging-x" + n[len("tiny_a") :], d) for n, d in ms],
        r"exactly one top-level folder|not a plain bundle name",
    ),
    "two_top_folders": (
        lambda w, ms: ms + [("tiny_b/LICENSE", b"x")],
        r"exactly one top-level folder, found \['tiny_a', 'tiny_b'\]",
    ),
}


@pytest.mark.parametrize("route", ("install", "download"))
@pytest.mark.parametrize("case", sorted(ARCHIVE_CASES))
def test_hostile_archive_is_refused_before_extraction(world, case, route):
    change, match = ARCHIVE_CASES[case]
    archive = raw_archive(world, change(world, valid_members(world)))
    if case == "encrypted_member":
        _patch(archive, "tiny_a/docs/secret.md", 6, 8, "<H", 0x1)
    index = write_index(archive.parent, archive, files=False)
    call = (lambda: install(world, archive, index)) if route == "install" else (lambda: download(world, archive, index))
    refused(world, IntegrityError, match, call)


def test_zip_bomb_by_total_size_and_the_limits_are_overridable(world):
    members = valid_members(world) + [("tiny_a/docs/noise.bin", bytes(range(256)) * (8 << 10))]  # 2 MiB
    archive = raw_archive(world, members)
    index = write_index(archive.parent, archive, files=False)
    refused(
        world,
        IntegrityError,
        r"expands to \d+ bytes, more than the limit of 1048576",
        lambda: install(world, archive, index, max_total_mb=1),
    )
    refused(
        world,
        IntegrityError,
        r"has 8 members, more than the limit of 5",
        lambda: install(world, archive, index, max_members=5),
    )
    zeros = raw_archive(world, valid_members(world) + [("tiny_a/docs/zeros.bin", bytes(8 << 20))], "z_v1.zip")
    refused(world, IntegrityError, r"zeros.bin' expands", lambda: install(world, zeros, None, name="tiny_a"))
    installed = install(world, zeros, None, name="tiny_a", max_ratio=5000, verify=False)  # the user's explicit call
    assert (Path(installed) / "docs" / "zeros.bin").stat().st_size == 8 << 20


def test_declared_sizes_are_not_trusted(world):
    """A member that declares fewer bytes than it holds: the extraction counts what it writes and the CRC fails."""
    archive = raw_archive(world, valid_members(world))
    _patch(archive, "tiny_a/configs/inference.json", 22, 24, "<I", 10)  # the uncompressed size fields
    index = write_index(archive.parent, archive, files=False)
    refused(
        world, IntegrityError, r"'tiny_a/configs/inference.json' is corrupted", lambda: install(world, archive, index)
    )


def test_truncated_archive_and_wrong_index_hash(world):
    bundle = make_bundle(world["src"], "tiny_a")
    archive, index = release(world, bundle)
    good = archive.read_bytes()
    archive.write_bytes(good[:-300])
    refused(world, IntegrityError, "is not a readable zip archive", lambda: install(world, archive, None))
    refused(world, IntegrityError, r"corrupted or was replaced", lambda: install(world, archive, index))
    archive.write_bytes(good)
    entry = json.loads(index.read_text())["tiny_a_v1.0.0"]
    bad = write_index(archive.parent, archive, {"sha256": "1" * 64})
    refused(world, IntegrityError, r"corrupted or was replaced", lambda: install(world, archive, bad))
    assert entry["files"]["models/model.pt"] == sha256_file(bundle / "models" / "model.pt")


# ---- seq2seq zoo verify --index, Hugging Face ----------------------------------------------------------------------
def test_verify_against_an_index_entry(world):
    bundle = make_bundle(world["src"], "tiny_a", "0.3.1")
    archive, index = release(world, bundle)
    placed = _place(world, bundle)
    report = json.loads(Zoo().verify(str(placed), forward=False, index=str(index), archive=str(archive)))
    assert report["index"]["entry"] == "tiny_a_v0.3.1" and report["index"]["archive"] == sha256_file(archive)
    other = world["tmp"] / "other_index.json"  # an index that vouches for 0.3.0 only
    entry = {**json.loads(index.read_text())["tiny_a_v0.3.1"], "version": "0.3.0", "source": archive.as_uri()}
    other.write_text(json.dumps({"tiny_a_v0.3.0": entry}))
    refused(
        world,
        IntegrityError,
        r"\(tiny_a version 0.3.1\) is not vouched for by .*it has \['0.3.0'\]",
        lambda: Zoo().verify(str(placed), forward=False, index=str(other)),
    )
    (placed / "docs" / "README.md").write_text("changed after release")
    refused(
        world,
        IntegrityError,
        r"differs from the index entry: changed \['docs/README.md'\]",
        lambda: Zoo().verify(str(placed), forward=False, index=str(index)),
    )
    with pytest.raises(ValueError, match="give --index too"):
        Zoo().verify(str(placed), archive=str(archive))


def test_hugging_face_download_is_checked_against_the_index_or_warned(world, monkeypatch):
    import monai

    bundle = make_bundle(world["src"], "tiny_a", "1.0.1")
    archive, index = release(world, bundle)
    served = {"bundle": bundle}

    def fake_download(name, version, bundle_dir, source, repo):  # MONAI's snapshot of the repository
        assert source == "huggingface_hub" and repo == "someone/tiny_a"
        shutil.copytree(served["bundle"], Path(bundle_dir) / name)
        (Path(bundle_dir) / name / ".gitattributes").write_text("*.pt filter=lfs\n")

    monkeypatch.setattr(monai.bundle, "download", fake_download)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = download_bundle(
            "tiny_a",
            "1.0.1",
            world["bundle_dir"],
            index=str(index),
            source="huggingface_hub",
            repo="someone/tiny_a",
            overwrite=True,
            verify=False,
        )
    assert not [w for w in caught if "vouches" in str(w.message)]  # the index vouches for every file
    assert tree(out) == {**tree(bundle), ".gitattributes": tree(out)[".gitattributes"]}
    tampered = make_bundle(world["src"] / "t", "tiny_a", "1.0.1")
    (tampered / "docs" / "README.md").write_text("not what the index lists")
    served["bundle"] = tampered
    refused(
        world,
        IntegrityError,
        r"differs from the index entry: changed \['docs/README.md'\]",
        lambda: download_bundle(
            "tiny_a",
            "1.0.1",
            world["bundle_dir"],
            index=str(index),
            source="huggingface_hub",
            repo="someone/tiny_a",
            overwrite=True,
        ),
    )
    with pytest.warns(UserWarning, match="nothing external vouches for this Hugging Face download"):
        download_bundle(
            "tiny_a",
            "1.0.1",
            world["bundle_dir"],
            source="huggingface_hub",
            repo="someone/tiny_a",
            overwrite=True,
            verify=False,
        )
    served["bundle"] = _hostile(world, "os_system_target", world["tmp"] / "hostile")
    with pytest.warns(UserWarning):
        refused(
            world,
            UntrustedConfigError,
            "os.system",
            lambda: download_bundle(
                "tiny_a", None, world["bundle_dir"], source="huggingface_hub", repo="someone/tiny_a", overwrite=True
            ),
        )


# ---- the checker itself -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "config,match",
    [
        ({"x": "$(lambda: 1).__globals__"}, "'__globals__' is refused"),
        ({"x": "$'{0.__class__}'.format(1)"}, "'format' is refused"),
        ({"x": "$[eval for eval in [1]] and eval('1')"}, "would shadow"),
        ({"x": "$import os; os.system('x')"}, "exactly one import statement"),
        ({"x": "$import subprocess"}, "'subprocess' is not an allowed package"),
        ({"x": "$from os import system"}, "'os' is not an allowed package"),
        ({"i": "$import os", "x": "$os"}, "'os' is not an allowed package"),
        ({"x": "$getattr(torch, 'load')"}, "'getattr' is not allowed"),
        ({"x": "$(y := 1)"}, "NamedExpr is not allowed"),
        ({"x": "$torch.hub.load('a', 'b')"}, "leads to 'torch.hub'"),
        ({"x": "$monai.utils.run_cmd(['ls'])"}, "leads to 'monai.utils.misc.run_cmd'"),
        ({"x": "$dict(**{'weights_only': False})"}, r"\*\* keyword splats"),
        ({"x": {"_target_": "eval"}}, "no MONAI component"),
        ({"x": {"_target_": "LoadImaged", "keys": "a", "reader": "open", "file": "x", "mode": "w"}}, "names a builtin"),
        ({"x": "$np.load('x', allow_pickle=True)"}, "'numpy' is not an allowed package"),
        ({"x": {"_target_": "NumpyReader", "allow_pickle": True}}, "allow_pickle must be the literal false"),
    ],
)
def test_the_allow_list_refuses_escape_hatches(config, match):
    with pytest.raises(UntrustedConfigError, match=match):
        check_config(config, "hostile.json")


def test_the_shipped_bundles_pass_and_use_only_allowed_names():
    for bundle in ("seq2seq_brain", "seq2seq_breast"):
        files = check_bundle_configs(ROOT / "bundles" / bundle)
        assert {p.name for p in files} >= {"inference.json", "train.json", "metadata.json", "logging.conf"}
    check_config(
        {
            "i": "$import torch.distributed as dist",
            "j": "$import os",
            "x": "$dist.get_rank() if dist.is_initialized() else int(os.environ.get('LOCAL_RANK', 0))",
            "y": "$[t for t in range(3) if t > 0] + list(map(lambda q: q + 1, [1]))",
            "z": {"_target_": "torch.optim.Adam", "params": "$@n.parameters()", "lr": "@lr"},
            "paths": ["models/model.pt", "configs/logging.conf", "0.4.0"],
        },
        "fine.json",
    )
