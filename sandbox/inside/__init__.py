"""Code that runs inside the sandbox (standard library and pytest only), copied in as ``orch_inside``.

``runner``: the trusted test runner; ``candidate``: the candidate's launcher and server; ``proxy``:
the candidate's module as the runner sees it; ``wire``: the plain-data encoding between them.
"""
