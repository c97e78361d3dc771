"""Plain domain logic, no Prefect: prompts, parsing, scoring, planning and reporting.

Everything here is a pure function or a small record over core types (and the providers' model
runtimes for embeddings), so it is tested without a flow, a server or a model call.
"""

__all__ = [
    "answers",  # parse, score and vote on final answers
    "code_extract",  # the code in a model's reply
    "json_reply",  # one JSON object out of a model's reply
    "judging",  # execution scores, the rubric judge's prompts and replies, ranking, preference pairs
    "pairs",  # preference pairs exported for TRL's DPOTrainer
    "prompts",  # the coding workflow's prompts
    "question_prompts",  # the question workflows' and verifiers' prompts
    "rag_index",  # the rag_qa document index (embeddings or BM25)
    "router_learned",  # the learned router: training, evaluation, choosing
    "routing",  # route validation, defaults, the hint/explicit/learned decisions, the router's prompt
    "sweep_chart",  # a sweep history's chart
    "sweep_ledger",  # which (task, sample) of a sweep has finished
    "sweep_plan",  # what a sweep runs
    "sweep_report",  # a sweep's numbers and the night-to-night comparison
    "workers",  # worker allow-list checks and pre-flight
]
