"""Intake: sources (folder, zip, tar), skips, .gitignore, limits, the manifest and hash-checked reads."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from ecl.analyzer import IntakeLimits, ManifestReader, build_manifest, read_input_document
from ecl.analyzer.ignore import IgnoreRules, parse_gitignore, skip_reason
from ecl.analyzer.manifest import CodebaseChanged, Manifest, sha256_hex
from ecl.core.errors import InputValidationError

LIMITS = IntakeLimits(max_files=100, max_file_bytes=10_000, max_total_bytes=100_000)


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


SAMPLE: dict[str, str | bytes] = {
    "src/server.js": "const net = require('net');\nmodule.exports = net;\n",
    "src/store.js": "class Store {}\n",
    "README.md": "# demo\n",
    "node_modules/lib/index.js": "junk\n",
    "dist/bundle.js": "junk\n",
    "package-lock.json": "{}\n",
    ".env": "SECRET=1\n",
    ".env.production": "SECRET=2\n",
    "deploy/server.pem": "-----BEGIN PRIVATE KEY-----\n",
    "logo.png": b"\x89PNG\r\n\x1a\n\0\0",
    "data.bin.txt": b"abc\0def",
    "latin1.txt": "caf\xe9".encode("latin-1"),
    ".gitignore": "*.log\nbuild-out/\n/root-only.js\n",
    "app.log": "log\n",
    "build-out/x.js": "x\n",
    "root-only.js": "x\n",
    "src/root-only.js": "kept\n",
}


def test_folder_manifest_keeps_code_and_skips_the_rest(tmp_path: Path) -> None:
    root = write(tmp_path / "code", SAMPLE)
    manifest = build_manifest(root, LIMITS)
    paths = [f.path for f in manifest.files]
    assert sorted(paths) == [".gitignore", "README.md", "src/root-only.js", "src/server.js", "src/store.js"]
    server = manifest.file("src/server.js")
    assert server is not None
    assert server.language == "javascript"
    assert server.lines == 2
    assert server.size == len(SAMPLE["src/server.js"])
    assert server.sha256 == sha256_hex(str(SAMPLE["src/server.js"]).encode())
    reasons = {s.path: s.reason for s in manifest.skipped}
    assert reasons["node_modules/"] == "vendored"
    assert reasons["dist/"] == "vendored"
    assert reasons["package-lock.json"] == "lockfile"
    assert reasons[".env"] == "secret"
    assert reasons[".env.production"] == "secret"
    assert reasons["deploy/server.pem"] == "secret"
    assert reasons["logo.png"] == "binary"
    assert reasons["data.bin.txt"] == "binary"
    assert reasons["latin1.txt"] == "binary"
    assert reasons["app.log"] == "gitignore"
    assert reasons["build-out/"] == "gitignore"
    assert reasons["root-only.js"] == "gitignore"
    summary = manifest.summary()
    assert summary["files"] == 5
    assert summary["skipped"]["secret"] == 3
    assert manifest.kind == "folder"
    assert manifest.source == str(root.resolve())


def test_secret_files_are_never_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write(tmp_path / "code", {"a.js": "x\n", ".env": "K=1\n", "id_rsa": "key\n", "k/.env.local": "K=2\n"})
    opened: list[str] = []
    real_open = os.open

    def spy(path: str | os.PathLike[str], flags: int, *args: int) -> int:
        opened.append(Path(path).name)
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", spy)
    manifest = build_manifest(root, LIMITS)
    assert [f.path for f in manifest.files] == ["a.js"]
    assert opened == ["a.js"]


def test_nested_gitignore_and_negation() -> None:
    rules = IgnoreRules(parse_gitignore("*.gen.js\n!keep.gen.js\ndocs/**/draft-*\n"))
    assert rules.ignored("a/b/x.gen.js", is_dir=False)
    assert not rules.ignored("a/keep.gen.js", is_dir=False)
    assert rules.ignored("docs/x/y/draft-1.md", is_dir=False)
    assert rules.ignored("docs/draft-1.md", is_dir=False)
    assert not rules.ignored("other/docs/draft-1.md", is_dir=False)
    nested = rules.extended(parse_gitignore("local.js\n/only-here.js\n", base="pkg"))
    assert nested.ignored("pkg/sub/local.js", is_dir=False)
    assert not nested.ignored("local.js", is_dir=False)
    assert nested.ignored("pkg/only-here.js", is_dir=False)
    assert not nested.ignored("pkg/sub/only-here.js", is_dir=False)
    dir_only = IgnoreRules(parse_gitignore("cache/\n# comment\n\n"))
    assert dir_only.ignored("x/cache", is_dir=True)
    assert not dir_only.ignored("x/cache", is_dir=False)
    assert IgnoreRules(parse_gitignore("f?o.[ch]\n")).ignored("foo.c", is_dir=False)
    assert not IgnoreRules(parse_gitignore("f?o.[ch]\n")).ignored("foo.x", is_dir=False)


def test_nested_gitignore_file_in_a_walk(tmp_path: Path) -> None:
    root = write(tmp_path / "code", {"pkg/.gitignore": "secret-plan.md\n", "pkg/secret-plan.md": "x\n", "a.js": "1\n"})
    paths = [f.path for f in build_manifest(root, LIMITS).files]
    assert "pkg/secret-plan.md" not in paths
    assert "a.js" in paths


def test_skip_reason_table() -> None:
    assert skip_reason("Cargo.lock", is_dir=False) == "lockfile"
    assert skip_reason("yarn.lock", is_dir=False) == "lockfile"
    assert skip_reason("app.min.js", is_dir=False) == "generated"
    assert skip_reason("target", is_dir=True) == "vendored"
    assert skip_reason("id_ed25519", is_dir=False) == "secret"
    assert skip_reason("server.js", is_dir=False) is None
    assert skip_reason("src", is_dir=True) is None


def test_symlinks_are_skipped_never_followed(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside", {"stolen.js": "secret code\n"})
    root = write(tmp_path / "code", {"a.js": "1\n"})
    (root / "link.js").symlink_to(outside / "stolen.js")
    (root / "linkdir").symlink_to(outside, target_is_directory=True)
    manifest = build_manifest(root, LIMITS)
    assert [f.path for f in manifest.files] == ["a.js"]
    assert {s.path: s.reason for s in manifest.skipped} == {"link.js": "symlink", "linkdir": "symlink"}


def zip_of(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return path


def tar_of(path: Path, members: dict[str, bytes], *, symlink: tuple[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
        if symlink:
            info = tarfile.TarInfo(symlink[0])
            info.type = tarfile.SYMTYPE
            info.linkname = symlink[1]
            tf.addfile(info)
    return path


MEMBERS = {
    "proj/src/a.js": b"let a = 1;\n",
    "proj/.gitignore": b"*.tmp\n",
    "proj/x.tmp": b"tmp\n",
    "proj/node_modules/m/i.js": b"m\n",
}


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_archives_are_read_in_memory_with_the_same_rules(tmp_path: Path, kind: str) -> None:
    archive = zip_of(tmp_path / "c.zip", MEMBERS) if kind == "zip" else tar_of(tmp_path / "c.tar.gz", MEMBERS)
    before = set(tmp_path.iterdir())
    manifest = build_manifest(archive, LIMITS)
    assert set(tmp_path.iterdir()) == before  # nothing extracted
    assert sorted(f.path for f in manifest.files) == ["proj/.gitignore", "proj/src/a.js"]
    assert manifest.kind == kind
    with ManifestReader(manifest) as reader:
        assert reader.read_text("proj/src/a.js") == "let a = 1;\n"


@pytest.mark.parametrize("name", ["../evil.js", "proj/../../evil.js", "/etc/passwd", "C:/evil.js"])
@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_archive_entries_that_escape_are_refused(tmp_path: Path, kind: str, name: str) -> None:
    members = {"ok.js": b"1\n", name: b"evil\n"}
    archive = zip_of(tmp_path / "c.zip", members) if kind == "zip" else tar_of(tmp_path / "c.tar.gz", members)
    with pytest.raises(InputValidationError) as info:
        build_manifest(archive, LIMITS)
    assert "escapes the archive" in str(info.value)
    assert name in str(info.value)
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [archive.name]


def test_archive_symlink_members_are_skipped(tmp_path: Path) -> None:
    archive = tar_of(tmp_path / "c.tgz", {"a.js": b"1\n"}, symlink=("link.js", "/etc/passwd"))
    manifest = build_manifest(archive, LIMITS)
    assert [f.path for f in manifest.files] == ["a.js"]
    assert manifest.skipped_counts == {"symlink": 1}


def test_corrupt_archive_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "c.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputValidationError, match=r"not a readable \.zip archive"):
        build_manifest(bad, LIMITS)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputValidationError) as info:
        build_manifest(tmp_path / "nope", LIMITS)
    assert str(info.value) == f"code_path {str(tmp_path / 'nope')!r} does not exist"
    assert info.value.errors[0]["field"] == "code_path"


def test_a_file_instead_of_a_folder(tmp_path: Path) -> None:
    single = write(tmp_path, {"main.js": "1\n"}) / "main.js"
    with pytest.raises(InputValidationError, match=r"is a file, not a folder or a \.zip / \.tar\.gz archive"):
        build_manifest(single, LIMITS)


def test_empty_codebase(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputValidationError, match=r"has no source files to analyze \(it is empty\)"):
        build_manifest(tmp_path / "empty", LIMITS)


def test_binary_only_codebase(tmp_path: Path) -> None:
    root = write(tmp_path / "bin", {"a.png": b"\x89PNG", "b.dat.txt": b"\0\0\0", "c.so": b"ELF"})
    with pytest.raises(InputValidationError, match=r"no source files to analyze \(skipped: 3 binary\)"):
        build_manifest(root, LIMITS)


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write(tmp_path / "code", {"a.js": "1\n", "b.js": "2\n"})
    real_open = os.open

    # The tests run as root, who reads any file whatever its mode: deny the read itself.
    def deny(path: str | os.PathLike[str], flags: int, *args: int) -> int:
        if Path(path).name == "b.js":
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(InputValidationError) as info:
        build_manifest(root, LIMITS)
    assert str(info.value) == "cannot read b.js in the codebase: cannot read b.js: Permission denied"


def test_limit_on_files_names_the_setting_and_value(tmp_path: Path) -> None:
    root = write(tmp_path / "code", {f"f{i}.js": "1\n" for i in range(4)})
    with pytest.raises(InputValidationError) as info:
        build_manifest(root, IntakeLimits(max_files=3))
    assert str(info.value) == "the codebase has more than 3 files, over analyzer.max_files = 3"
    assert info.value.errors[0]["field"] == "analyzer.max_files"


def test_limit_on_bytes_per_file(tmp_path: Path) -> None:
    root = write(tmp_path / "code", {"big.js": "x" * 101})
    with pytest.raises(InputValidationError) as info:
        build_manifest(root, IntakeLimits(max_file_bytes=100))
    assert str(info.value) == "big.js is 101 bytes, over analyzer.max_file_bytes = 100"


def test_limit_on_bytes_per_file_in_an_archive_that_lies(tmp_path: Path) -> None:
    archive = zip_of(tmp_path / "c.zip", {"big.js": b"x" * 500})
    with pytest.raises(InputValidationError, match=r"over analyzer\.max_file_bytes = 100"):
        build_manifest(archive, IntakeLimits(max_file_bytes=100))


def test_limit_on_total_bytes(tmp_path: Path) -> None:
    root = write(tmp_path / "code", {f"f{i}.js": "x" * 40 for i in range(3)})
    with pytest.raises(InputValidationError) as info:
        build_manifest(root, IntakeLimits(max_total_bytes=100))
    assert "over analyzer.max_total_bytes = 100" in str(info.value)
    assert "\n" not in str(info.value)


def test_high_entropy_secrets_are_counted_in_the_manifest_and_redacted_on_read(tmp_path: Path) -> None:
    key = "AKIAIOSFODNN7EXAMPLE"
    token = "q8Zr4Xk2Lm9Pw7Vt3Ns6Hb1Jc5Gd0Fa2"
    root = write(tmp_path / "code", {"cfg.js": f"const k = '{key}';\nconst t = \"{token}\";\nconst name = 1;\n"})
    manifest = build_manifest(root, LIMITS)
    assert manifest.files[0].redactions == 2
    with ManifestReader(manifest) as reader:
        text = reader.read_redacted("cfg.js")
        assert key not in text
        assert token not in text
        assert text.count("\n") == 3
        assert "[REDACTED:aws-key]" in text
        assert reader.read_text("cfg.js").count(key) == 1


def test_a_file_changed_after_intake_fails_the_read(tmp_path: Path) -> None:
    root = write(tmp_path / "code", {"a.js": "let a = 1;\n", "b.js": "2\n"})
    manifest = build_manifest(root, LIMITS)
    (root / "a.js").write_text("let a = 2;\n")
    (root / "b.js").unlink()
    with ManifestReader(manifest) as reader:
        with pytest.raises(CodebaseChanged) as info:
            reader.read_text("a.js")
        assert info.value.path == "a.js"
        assert "a.js changed after intake" in str(info.value)
        assert info.value.retryable is False
        with pytest.raises(CodebaseChanged, match=r"b\.js changed after intake"):
            reader.read_text("b.js")


def test_reading_outside_the_manifest_is_refused(tmp_path: Path) -> None:
    root = write(tmp_path / "code", {"a.js": "1\n", ".env": "K=1\n"})
    manifest = build_manifest(root, LIMITS)
    with ManifestReader(manifest) as reader:
        for path in (".env", "../etc/passwd", "/etc/passwd"):
            with pytest.raises(Exception, match="not in the codebase manifest"):
                reader.read_text(path)


def test_a_folder_swapped_for_a_symlink_after_intake_is_not_followed(tmp_path: Path) -> None:
    root = write(tmp_path / "code", {"src/a.js": "1\n"})
    outside = write(tmp_path / "outside", {"a.js": "1\n"})
    manifest = build_manifest(root, LIMITS)
    (root / "src" / "a.js").unlink()
    (root / "src").rmdir()
    (root / "src").symlink_to(outside, target_is_directory=True)
    with ManifestReader(manifest) as reader, pytest.raises(CodebaseChanged, match="symbolic link"):
        reader.read_text("src/a.js")


def test_manifest_round_trips_through_json(tmp_path: Path) -> None:
    manifest = build_manifest(write(tmp_path / "code", SAMPLE), LIMITS)
    again = Manifest.model_validate_json(manifest.model_dump_json())
    assert again == manifest
    assert again.file("src/store.js") == manifest.file("src/store.js")


def test_input_documents(tmp_path: Path) -> None:
    write(tmp_path, {"SKILL.md": "Use Result types.\n", ".env": "K=1\n", "big.md": "x" * 200})
    doc = read_input_document(tmp_path / "SKILL.md", "skill", LIMITS)
    assert doc.text == "Use Result types.\n"
    with pytest.raises(InputValidationError, match=r"skill .* does not exist"):
        read_input_document(tmp_path / "nope.md", "skill", LIMITS)
    with pytest.raises(InputValidationError, match=r"vision .* is not a file"):
        read_input_document(tmp_path, "vision", LIMITS)
    with pytest.raises(InputValidationError, match="looks like a secrets file"):
        read_input_document(tmp_path / ".env", "deploy", LIMITS)
    with pytest.raises(InputValidationError, match=r"over analyzer\.max_file_bytes = 100"):
        read_input_document(tmp_path / "big.md", "vision", IntakeLimits(max_file_bytes=100))
