"""The report: paper numbers beside ours, rendered into reports/tables.md."""
