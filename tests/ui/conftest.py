# tests/ui/ui_test.py drives a real browser (`make ui-test`); keep `pytest tests` away from it.
collect_ignore = ["ui_test.py"]
