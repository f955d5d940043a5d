"""Plausible wrong answers to every exercise (instructor only, never shipped).

``lessonN.py`` declares ``MUTANTS = {"N.k": [function, ...]}``: each function has the exercise's signature and
makes one mistake a learner makes (its docstring says which). ``python -m course_lib.exercises mutants`` (and
tests/test_mutants.py in CI) proves that the public checks plus the hidden tests reject every mutant and accept the
solution, and prints the per-exercise mutation score. A mutant marked ``@common("words")`` is a mistake the public
checks must catch themselves, with a hint containing those words (the hint aimed at that mistake).
"""


def common(hint_words: str):
    """Mark a mutant as a common mistake: a public check must reject it with a hint containing ``hint_words``."""

    def mark(fn):
        fn.common_hint = hint_words
        return fn

    return mark
