"""Setup texts shared by the CLI and API tests."""

# two two-class glm tasks, online, short times: the smallest multitask setup every command runs
TINY_TWO_TASKS = """
name = "tiny"
[[tasks]]
name = "A"
classes = 2
noise = 0.3
[[tasks]]
name = "B"
classes = 2
[teacher]
alignment = 0.5
[student]
kind = "glm"
init_scale = 0.0
[training]
protocol = "online"
lr = 0.5
times = [0.5, 1]
"""
