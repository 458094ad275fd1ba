"""The ground floor every app stands on: the error contract, typed settings
parsers, the base API view and body checks, the JSON parser's input rules, the
one image policy, bearer-token checks and outage detection.

It imports nothing of the project (only Django, DRF and libraries), so any app,
the live contract and the site itself may import it.
"""
