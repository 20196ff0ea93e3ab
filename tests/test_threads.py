import sys
import threading
from pathlib import Path

import pytest

from cinerec.threads import name_os_thread


@pytest.mark.skipif(sys.platform != "linux", reason="thread names from /proc are Linux's")
def test_a_thread_shows_its_python_name_to_the_operating_system() -> None:
    seen: list[str] = []

    def run() -> None:
        name_os_thread()
        seen.append(Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip())

    t = threading.Thread(target=run, name="plan-refresher-and-more")
    t.start()
    t.join()
    assert seen == ["plan-refresher-"]  # Linux keeps 15 bytes
