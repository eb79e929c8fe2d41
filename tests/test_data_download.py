"""Downloads and the command line against a local HTTP server on 127.0.0.1 (never the network)."""

import hashlib
import http.server
import io
import subprocess
import sys
import tarfile
import threading
import zipfile

import pytest

from camfaith.data.download import (
    CATALOGUE,
    MANUAL_DATASETS,
    MEDMNIST_MD5,
    ChecksumError,
    DownloadError,
    ManualDownloadRequired,
    RemoteFile,
    download_dataset,
    download_file,
    extract_archive,
    fetch_and_extract,
    instructions,
    md5sum,
    medmnist_file,
    require_manual_download,
)
from camfaith.data.download import catalogue as catalogue_module
from camfaith.data.download.__main__ import main

PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` with support for ``Range: bytes=N-``; records every Range header."""

    def do_GET(self):
        server = self.server
        server.ranges.append(self.headers.get("Range"))
        body = server.files.get(self.path.split("?")[0])
        if body is None:
            self.send_error(404)
            return
        requested = self.headers.get("Range")
        if requested and server.honour_range:
            start = int(requested.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            chunk = body[start:]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            chunk = body
            self.send_response(200)
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        if server.cut_after is not None:
            self.wfile.write(chunk[: server.cut_after])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(chunk)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files = {"/data.bin": PAYLOAD}
    httpd.ranges = []
    httpd.honour_range = True
    httpd.cut_after = None
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


MD5 = hashlib.md5(PAYLOAD).hexdigest()


def test_download_verifies_the_checksum_and_leaves_no_part_file(server, tmp_path):
    target = download_file(f"{server.url}/data.bin?download=1", tmp_path / "sub" / "data.bin", MD5,
                           size=len(PAYLOAD), progress=False, chunk_size=1000)
    assert target.read_bytes() == PAYLOAD
    assert not (tmp_path / "sub" / "data.bin.part").exists()
    assert md5sum(target) == MD5
    # A verified file is not downloaded again.
    download_file(f"{server.url}/data.bin", target, MD5, progress=False)
    assert len(server.ranges) == 1


def test_checksum_mismatch_raises_and_keeps_nothing(server, tmp_path):
    target = tmp_path / "data.bin"
    with pytest.raises(ChecksumError, match=f"expected {'0' * 32}"):
        download_file(f"{server.url}/data.bin", target, "0" * 32, progress=False)
    assert not target.exists() and not (tmp_path / "data.bin.part").exists()


def test_resume_from_a_partial_file_with_a_range_request(server, tmp_path):
    target = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:4000])
    download_file(f"{server.url}/data.bin", target, MD5, progress=False)
    assert server.ranges == ["bytes=4000-"]
    assert target.read_bytes() == PAYLOAD


def test_server_without_range_support_restarts_the_file(server, tmp_path):
    server.honour_range = False
    (tmp_path / "data.bin.part").write_bytes(b"stale bytes that must be overwritten")
    target = download_file(f"{server.url}/data.bin", tmp_path / "data.bin", MD5, progress=False)
    assert target.read_bytes() == PAYLOAD


def test_complete_part_file_is_verified_and_renamed(server, tmp_path):
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    target = download_file(f"{server.url}/data.bin", tmp_path / "data.bin", MD5, progress=False)
    assert server.ranges == [f"bytes={len(PAYLOAD)}-"]
    assert target.read_bytes() == PAYLOAD


def test_interrupted_transfer_keeps_the_part_file_and_resumes(server, tmp_path):
    server.cut_after = 3000
    target = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match="resume"):
        download_file(f"{server.url}/data.bin", target, MD5, progress=False, chunk_size=512)
    assert (tmp_path / "data.bin.part").stat().st_size == 3000 and not target.exists()
    server.cut_after = None
    download_file(f"{server.url}/data.bin", target, MD5, progress=False)
    assert server.ranges[-1] == "bytes=3000-"
    assert target.read_bytes() == PAYLOAD


def test_http_errors_and_unreachable_hosts(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(f"{server.url}/missing.bin", tmp_path / "missing.bin", progress=False)
    with pytest.raises(DownloadError, match="cannot reach"):
        download_file("http://127.0.0.1:9/nothing", tmp_path / "nothing.bin", progress=False, timeout=2)


def test_existing_file_with_wrong_checksum_is_reported(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"other content")
    with pytest.raises(ChecksumError, match="delete it"):
        download_file("http://127.0.0.1:9/unused", target, MD5, progress=False)


def _zip_bytes(entries):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, content in entries.items():
            bundle.writestr(name, content)
    return buffer.getvalue()


def test_fetch_and_extract_a_zip_once(server, tmp_path):
    archive = _zip_bytes({"CRC-VAL-HE-7K/ADI/ADI-TCGA-1.tif": b"tile", "CRC-VAL-HE-7K/TUM/TUM-TCGA-1.tif": b"t"})
    server.files["/CRC-VAL-HE-7K.zip"] = archive
    remote = RemoteFile(f"{server.url}/CRC-VAL-HE-7K.zip?download=1", "CRC-VAL-HE-7K.zip",
                        hashlib.md5(archive).hexdigest(), len(archive))
    folder = fetch_and_extract(remote, tmp_path / "crc", progress=False)
    assert (folder / "CRC-VAL-HE-7K" / "ADI" / "ADI-TCGA-1.tif").read_bytes() == b"tile"
    assert not (folder / "CRC-VAL-HE-7K.zip").exists()
    assert not [path for path in folder.iterdir() if path.name.startswith(".extract-")]
    fetch_and_extract(remote, tmp_path / "crc", progress=False)
    assert len(server.ranges) == 1


def test_extract_tar_gz_and_refuse_clashes(tmp_path):
    archive = tmp_path / "stl10_binary.tar.gz"
    with tarfile.open(archive, "w:gz") as bundle:
        content = b"0123"
        info = tarfile.TarInfo("stl10_binary/train_y.bin")
        info.size = len(content)
        bundle.addfile(info, io.BytesIO(content))
    extract_archive(archive, tmp_path / "stl10")
    assert (tmp_path / "stl10" / "stl10_binary" / "train_y.bin").read_bytes() == b"0123"
    (tmp_path / "stl10" / ".stl10_binary.tar.gz.extracted").unlink()
    with pytest.raises(FileExistsError, match="stl10_binary already exist"):
        extract_archive(archive, tmp_path / "stl10")


def test_extract_refuses_members_outside_the_target(tmp_path):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(_zip_bytes({"../escaped.txt": b"x"}))
    with pytest.raises(ValueError, match="outside"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()
    not_an_archive = tmp_path / "plain.txt"
    not_an_archive.write_text("plain")
    with pytest.raises(ValueError, match="neither a zip nor a tar"):
        extract_archive(not_an_archive, tmp_path / "out")


@pytest.mark.parametrize("name", ["covid19", "ham10000", "breakhis"])
def test_login_datasets_explain_the_manual_steps(name, tmp_path):
    with pytest.raises(ManualDownloadRequired) as caught:
        download_dataset(name, tmp_path)
    message = str(caught.value)
    assert str(tmp_path) in message and "https://" in message
    with pytest.raises(ManualDownloadRequired):
        require_manual_download(name, tmp_path)


def test_instructions_and_remote_files():
    assert "kaggle.com/datasets/tawsifurrahman/covid19-radiography-database" in instructions("covid19")
    assert "10.7910/DVN/DBW86T" in instructions("ham10000")
    remote = medmnist_file("pathmnist", 28)
    assert remote.url.startswith("https://zenodo.org/records/10519652/files/pathmnist.npz")
    assert remote.md5 == "a8b06965200029087d5bd730944a56c1"
    assert medmnist_file("dermamnist", 224).filename == "dermamnist_224.npz"
    with pytest.raises(ValueError, match="unknown MedMNIST"):
        medmnist_file("chestmnist")
    with pytest.raises(ValueError, match="unknown dataset"):
        download_dataset("mnist")
    with pytest.raises(ValueError, match="no instructions"):
        instructions("mnist")


def test_help_lists_every_dataset_with_its_size_licence_and_layout(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "python -m camfaith.data.download" in text and "--root DIR" in text and "--list" in text
    for name, info in CATALOGUE.items():
        assert f"{name}: {info.title}" in text
        assert all(line in text for line in info.layout)
        assert info.size is None or info.size in text
        assert info.licence is None or info.licence in text
    assert "11.7 GB" in text and "CC BY-NC 4.0" in text and "manual download" in text


def test_list_prints_the_catalogue(capsys):
    assert main(["--list"]) == 0
    text = capsys.readouterr().out
    assert all(f"{name}: " in text for name in CATALOGUE)
    assert "covid19_radiography/COVID-19_Radiography_Dataset/<class>/images/*.png" in text


@pytest.mark.parametrize("name", MANUAL_DATASETS)
def test_manual_dataset_prints_the_steps_and_exits_with_status_2(name, tmp_path, capsys):
    assert main([name, "--root", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "cannot be downloaded automatically" in captured.err and "https://" in captured.err
    assert str(tmp_path / CATALOGUE[name].folder) in captured.err
    assert not list(tmp_path.iterdir())  # nothing was created


def test_manual_dataset_from_the_shell_has_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "camfaith.data.download", "ham10000", "--root", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "10.7910/DVN/DBW86T" in result.stderr


def test_unknown_or_missing_name_is_a_usage_error_listing_the_names(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["mnist"])
    assert exited.value.code == 2
    message = capsys.readouterr().err
    assert "unknown dataset 'mnist'" in message and all(name in message for name in CATALOGUE)
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2 and "--list" in capsys.readouterr().err
    assert main(["synthetic"]) == 0 and "no download" in capsys.readouterr().out


def test_command_line_downloads_into_the_data_root(server, tmp_path, monkeypatch, capsys):
    server.files["/pathmnist.npz"] = PAYLOAD
    monkeypatch.setattr(catalogue_module, "ZENODO_MEDMNIST", server.url)
    monkeypatch.setitem(MEDMNIST_MD5, ("pathmnist", 28), MD5)
    assert main(["pathmnist", "--root", str(tmp_path)]) == 0
    assert (tmp_path / "pathmnist" / "pathmnist.npz").read_bytes() == PAYLOAD
    assert f"ready at {tmp_path / 'pathmnist' / 'pathmnist.npz'}" in capsys.readouterr().out


def test_command_line_reports_a_failed_transfer_without_a_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(catalogue_module, "ZENODO_MEDMNIST", "http://127.0.0.1:9")
    assert main(["dermamnist", "--root", str(tmp_path)]) == 1
    assert "cannot reach" in capsys.readouterr().err
