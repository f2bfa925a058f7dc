"""Put tests/tools/get_pip_standin.py where ansible-test looks for its cached pip bootstrap script.

Leaves an existing cache file alone (it may be the real script, fetched where that host is
reachable). See get_pip_standin.py for why.
"""

import shutil
import types
from pathlib import Path

from ansible_test._internal.python_requirements import get_venv_packages

HERE = Path(__file__).resolve().parent


def main():
    pip_version = get_venv_packages(types.SimpleNamespace(version="any"))["pip"]
    target = Path.home() / ".ansible" / "test" / "cache" / f"get_pip_{pip_version.replace('.', '_')}.py"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(HERE / "get_pip_standin.py", target)
        print(f"installed the pip bootstrap stand-in as {target}")


if __name__ == "__main__":
    main()
