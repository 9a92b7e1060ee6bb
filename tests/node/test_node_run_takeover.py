"""``vpccni node-run`` on a node upstream's ``aws-node`` ran: once ipamd answers and vpccni's
conflist is written, upstream's ``10-aws.conflist`` (which sorts first, so the runtime would keep
using it) is moved aside to ``10-aws.conflist.vpccni-replaced``, and node-run says so."""

from __future__ import annotations

import json
import signal
from typing import Any

from tests.node.test_node_run import host_dirs, node_run, wait_for
from tests.plugin.test_install_takeover import UPSTREAM


def test_node_run_moves_upstreams_conflist_aside_after_writing_its_own(make_node: Any) -> None:
    node = make_node()
    _, conf_dir = host_dirs(node)
    upstream = conf_dir / "10-aws.conflist"
    upstream.write_text(json.dumps(UPSTREAM, indent=2))
    original = upstream.read_bytes()
    replaced = conf_dir / "10-aws.conflist.vpccni-replaced"
    process = node_run(node)
    wait_for(replaced.exists, process, "upstream's conflist to be moved aside")
    assert not upstream.exists()
    assert replaced.read_bytes() == original
    assert (conf_dir / "10-vpccni.conflist").exists()
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    lines = [line for line in out.splitlines() if line.startswith("vpccni: ")]
    written = next(i for i, line in enumerate(lines) if "installed " in line and "conflist" in line)
    assert lines[written + 1] == (
        f"vpccni: moved upstream's {upstream} aside to {replaced}: it sorts before "
        "10-vpccni.conflist, and the runtime uses only the first (to go back to aws-node, "
        "delete 10-vpccni.conflist; aws-node writes 10-aws.conflist again when it starts)"
    )
