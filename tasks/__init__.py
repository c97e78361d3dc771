"""Prefect tasks: the steps of a workflow that call a model or the sandbox, each a retryable task run.

Every module here defines the Prefect tasks of one job (call them through ``flows.runner.Runner``
or their ``.fn``); the plain logic they use is in domain/. ``model_call`` is the one way a task
calls a model (retries, fallback, a ``calls`` row per try); ``run_record`` writes the ``runs`` row.
"""

__all__ = [
    "coding",  # write-code, run-tests
    "debate",  # critique
    "judge",  # judge (execution and rubric ranking, preference pairs)
    "load",  # load-task
    "logs",  # the run's logger, inside Prefect or not
    "model_call",  # call_model, run_resources
    "python_tool",  # run-python (science)
    "question",  # ask-solver
    "retrieval",  # retrieve (rag_qa)
    "route",  # route
    "run_record",  # the run's summary, its runs row and UI artifact
    "testgen",  # generate-tests, review-generated-tests
    "verify",  # verify-answer, verify-citations
]
