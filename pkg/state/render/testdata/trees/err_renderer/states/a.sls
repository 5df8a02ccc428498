#!mako|yaml
def run():
    return {}
