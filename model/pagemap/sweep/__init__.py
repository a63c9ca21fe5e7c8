"""`pagemap sweep`: every scenario within bounds, checked; findings grouped by
root cause (spec/sweep.md).

bounds      the bounds file (TOML) and its validation
vocabulary  the op table: every op a thread can run, and what each refers to
enumerate   every scenario within the bounds, as scenario-file dicts
canon       canonical form: renaming, and the sound skips
run         checking one scenario on a worker: verdict and root cause
engine      the distributed engine (Dask): a local cluster or a scheduler
group       findings by root cause, the smallest scenario of each, files under --out
command     the command line
"""
