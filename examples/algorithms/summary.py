"""Summary statistics of the CSV files of a data set, as a compute job.

Reads every CSV file in $INSITU_INPUTS (the asset's files, read-only), and writes
/output/summary.json: for each file, its row count and, for each numeric column, the count,
mean, minimum and maximum. Parameters ($INSITU_PARAMS, a JSON object of strings):
  columns  comma-separated column names to keep (default: every numeric column)
Only aggregates leave the sandbox, never a row.
"""

import csv
import json
import math
import os
import sys


def numeric(value):
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def summarise(path, wanted):
    stats = {}
    rows = 0
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            rows += 1
            for column, value in row.items():
                if wanted and column not in wanted:
                    continue
                number = numeric(value or "")
                if number is None:
                    continue
                entry = stats.setdefault(column, {"count": 0, "sum": 0.0, "min": number, "max": number})
                entry["count"] += 1
                entry["sum"] += number
                entry["min"] = min(entry["min"], number)
                entry["max"] = max(entry["max"], number)
    columns = {
        column: {
            "count": entry["count"],
            "mean": entry["sum"] / entry["count"],
            "min": entry["min"],
            "max": entry["max"],
        }
        for column, entry in sorted(stats.items())
    }
    return {"rows": rows, "columns": columns}


def main():
    inputs = os.environ.get("INSITU_INPUTS", "/data")
    output = os.environ.get("INSITU_OUTPUT", "/output")
    with open(os.environ.get("INSITU_PARAMS", "/algorithm/params.json")) as handle:
        params = json.load(handle)
    wanted = {name.strip() for name in params.get("columns", "").split(",") if name.strip()}
    files = sorted(name for name in os.listdir(inputs) if name.lower().endswith(".csv"))
    if not files:
        print("no CSV file in the inputs", file=sys.stderr)
        return 2
    summary = {name: summarise(os.path.join(inputs, name), wanted) for name in files}
    with open(os.path.join(output, "summary.json"), "w") as handle:
        json.dump(summary, handle, indent=2, sort_keys=True)
    print("summarised", ", ".join(files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
