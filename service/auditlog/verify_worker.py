"""`python -m service.auditlog.verify_worker`: one worker process of `handover audit verify`'s fast path.

Kept apart from `verify_parallel` so that the module runs as itself (not as `__main__`), and the results it
pickles name classes the parent can load.
"""

from service.auditlog.verify_parallel import serve_jobs

if __name__ == "__main__":
    serve_jobs()
