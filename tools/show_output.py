"""Prints what a replay wrote: files per table and a few records of each.

    python -m tools.show_output OUTPUT_DIR [--records=3]
"""
import argparse
import glob
import os
from collections import Counter

from sessions.records import from_json

TABLES = ("gs_game_session_ended", "gs_game_session_changed", "campaign_trigger", "dead_letter")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir")
    parser.add_argument("--records", type=int, default=2, help="records to show per table")
    args = parser.parse_args(argv)
    for table in TABLES:
        files = sorted(glob.glob(os.path.join(args.output_dir, table, "**", "*.*"), recursive=True))
        jsonl = [f for f in files if f.endswith(".jsonl")]
        records = [line for f in jsonl for line in open(f, encoding="utf-8") if line.strip()]
        print(f"\n{table}: {len(files)} file(s), {len(records):,} record(s)")
        for f in files:
            print(f"  {os.path.relpath(f, args.output_dir)}")
        for line in records[: args.records]:
            record = from_json(line)
            record.pop("event", None)  # a firing's session event is shown in its own table
            print("  " + ", ".join(f"{k}={v}" for k, v in list(record.items())[:9]) + ", ...")
        if table == "campaign_trigger" and records:
            fired = Counter(from_json(line)["trigger"] for line in records)
            print("  fired: " + ", ".join(f"{name} {n}" for name, n in sorted(fired.items())))


if __name__ == "__main__":
    main()
