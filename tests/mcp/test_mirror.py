"""--mirror DIR: every write is mirrored to DIR/<key>; an edit made outside the server is
reported on read and protects the file from being overwritten."""

from pathlib import Path

import anyio


def test_mirror(mcp_harness, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()

    async def main():
        async with mcp_harness.session("planner", "--mirror", str(mirror)) as planner:
            await planner.ok("write", key="task/spec", content="v1 of the spec\n")
            path = mirror / "task" / "spec"
            assert path.read_text() == "v1 of the spec\n"

            r = await planner.ok("read", key="task/spec")
            assert r["content"] == "v1 of the spec\n"
            assert r.get("mirror", {}).get("edited_outside", False) is False

            await planner.ok("write", key="task/spec", content="v2 of the spec\n")
            assert path.read_text() == "v2 of the spec\n"

            # Someone edits the mirror file by hand.
            path.write_text("v2 of the spec, edited by hand in an editor\n")

            r = await planner.ok("read", key="task/spec")
            assert r["content"] == "v2 of the spec\n", "the read returns the segment's content"
            assert r["mirror"]["edited_outside"] is True
            assert Path(r["mirror"]["path"]).resolve() == path.resolve()

            m = await planner.refused("write", "mirror_conflict", key="task/spec", content="v3\n")
            assert Path(m["path"]).resolve() == path.resolve()
            # The hand edit was not overwritten, and nothing was written to the segment.
            assert path.read_text() == "v2 of the spec, edited by hand in an editor\n"
            r = await planner.ok("read", key="task/spec")
            assert r["version"] == 2

    anyio.run(main)
