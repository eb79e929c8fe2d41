"""``python -m camfaith.data.download NAME [--root DIR]``: put one dataset in its folder under the data root.

Public datasets are downloaded with their published checksums and resume after an interruption
(run the same command again). Datasets behind a login or a licence step (COVID-19 Radiography,
HAM10000, BreakHis) print the manual steps and exit with status 2; ``--help`` and ``--list`` show
every dataset with its size, licence and expected layout.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence

from camfaith.data.base import DATA_ROOT_VARIABLE, data_root
from camfaith.data.download.catalogue import CATALOGUE, COMMAND, ManualDownloadRequired, download_dataset
from camfaith.data.download.http import DownloadError

EXIT_MANUAL = 2  # the dataset needs manual steps (also argparse's status for a bad command line)
EXIT_FAILED = 1  # a transfer or checksum failed; a partial file is kept where it can be resumed


def describe(name: str) -> str:
    """A few lines on dataset ``name``: how it is obtained, size and licence (when known), layout."""
    info = CATALOGUE[name]
    lines = [f"{name}: {info.title}; {'manual download' if info.manual else 'automatic download'}"]
    if info.size:
        lines.append(f"  size: {info.size}")
    if info.licence:
        lines.append(f"  licence: {info.licence}")
    lines.append("  layout under the data root:")
    lines += [f"    {line}" for line in info.layout]
    return "\n".join(lines)


def catalogue_text() -> str:
    """:func:`describe` for every dataset, in the order of the catalogue."""
    return "\n\n".join(describe(name) for name in CATALOGUE)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description="Download a dataset of the report into its folder under the data root, verified and\n"
                    "resumable, or print the manual steps (exit status 2) for one behind a login.",
        epilog=f"datasets:\n\n{catalogue_text()}\n\nThe synthetic dataset is generated and needs no download.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", nargs="?", metavar="NAME", help=f"one of: {', '.join(CATALOGUE)}")
    parser.add_argument("--root", metavar="DIR",
                        help=f"data root (default: ${DATA_ROOT_VARIABLE}, else ./data; now {data_root()})")
    parser.add_argument("--list", action="store_true",
                        help="list the datasets with their size, licence and layout, then exit")
    return parser


def _wrap(message: str) -> str:
    return textwrap.fill(message, width=100, break_long_words=False, break_on_hyphens=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        print(catalogue_text())
        return 0
    if args.name is None:
        parser.error(f"name a dataset to download (one of: {', '.join(CATALOGUE)}), or pass --list")
    name = args.name.lower()
    if name == "synthetic":
        print("synthetic needs no download: it is generated when it is loaded.")
        return 0
    if name not in CATALOGUE:
        parser.error(f"unknown dataset {args.name!r}; choose one of: {', '.join(CATALOGUE)}")
    try:
        folder = download_dataset(name, args.root)
    except ManualDownloadRequired as error:
        print(_wrap(str(error)), file=sys.stderr)
        return EXIT_MANUAL
    except DownloadError as error:
        print(_wrap(f"error: {error}"), file=sys.stderr)
        return EXIT_FAILED
    print(f"{name} is ready at {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
