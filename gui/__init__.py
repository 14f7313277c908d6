"""Thin Qt views over ``core``: one panel a file; only the worker touches a trainer."""

APP_NAME = "genmodel-sandbox"
ORG_NAME = "genmodel-sandbox"
