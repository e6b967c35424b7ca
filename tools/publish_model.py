"""Write a training checkpoint's weights for others to load.

Usage::

    python tools/publish_model.py IN_FILE OUT_FILE

Keeps the weights and the plain parts of ``meta`` (no optimizer, message
hub or numpy values), so a plain ``torch.load`` loads the result without
this package; the name gets the file's SHA-256 prefix, as with MMSeg's
``publish_model.py``.
"""
import argparse

from projects.hmsa_tools import cli
from projects.hmsa_tools.deploy import publish_checkpoint


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description='Process a checkpoint to be published')
    parser.add_argument('in_file', help='input checkpoint filename')
    parser.add_argument('out_file', help='output checkpoint filename')
    args = parser.parse_args(argv)
    cli.check_checkpoint(args.in_file)
    try:
        print(publish_checkpoint(args.in_file, args.out_file))
    except ValueError as exc:
        raise cli.ToolError(str(exc)) from None


if __name__ == '__main__':
    cli.run_tool(main)
