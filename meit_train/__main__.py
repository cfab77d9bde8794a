"""``python -m meit_train {train,eval,make-tiny-model} ...``."""

import sys

from meit_train.cli import eval_main, tiny_main, train_main

COMMANDS = {"train": train_main, "eval": eval_main, "make-tiny-model": tiny_main}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(f"usage: python -m meit_train {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        sys.exit(2)
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
