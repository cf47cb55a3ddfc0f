"""make bench's honesty, without timing anything: a goal not measured is said, with why, and is never counted as
met; the summary counts every goal; the exit code is 1 when a measured goal fails, 3 when one is not measured."""

from parity.commands.bench import Goal, find_program, summary


def test_every_goal_met_exits_0():
    line, code = summary([Goal("1.", "a", "2.0x", True), Goal("2.", "b", "3.0x", True)])
    assert (line, code) == ("bench: 2/2 goals met, 2/2 measured", 0)


def test_a_failed_goal_exits_1_even_beside_an_unmeasured_one():
    goals = [Goal("1.", "a", "2.0x", True), Goal("2.", "b", "0.5x", False), Goal("3.", "c", why="no bun")]
    line, code = summary(goals)
    assert code == 1 and line.startswith("bench: 1/3 goals met, 2/3 measured (not measured: 3)")
    assert "FAIL" in goals[1].line() and "PASS" in goals[0].line()


def test_a_goal_not_measured_is_not_met_and_says_why():
    goals = [Goal("1.", "a", "2.0x", True), Goal("2.", "fused vs microgpt.py", why="pass --microgpt-py PATH")]
    line, code = summary(goals)
    assert code == 3 and "1/2 goals met, 1/2 measured" in line
    assert goals[1].line().endswith("NOT MEASURED (pass --microgpt-py PATH)")


def test_a_program_that_is_not_there_is_none(tmp_path, monkeypatch):
    monkeypatch.delenv("MICROGPT_PY", raising=False)
    assert find_program(None, "MICROGPT_PY", tmp_path / "microgpt.py") is None
    (tmp_path / "microgpt.py").write_text("print()")
    assert find_program(None, "MICROGPT_PY", tmp_path / "microgpt.py") == tmp_path / "microgpt.py"
