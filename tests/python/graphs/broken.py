"""Cannot be loaded: ``build_graph`` raises; ``not_a_graph`` returns something else.
Expected: exit status 2 with the reason."""


def build_graph():
    raise RuntimeError("the model client needs an API key")


def not_a_graph():
    return {"nodes": []}
