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

# one noisy two-class task, erm: a replica solve takes milliseconds
TINY_ERM_ONE = """
name = "tiny erm"
[[tasks]]
name = "A"
classes = 2
noise = 0.5
[student]
kind = "glm"
[training]
protocol = "erm"
alpha = 2.0
ridge = 0.1
"""

# two coupled two-class tasks on separate inputs (one noisy), erm
TINY_ERM_TWO = """
name = "tiny erm two tasks"
[[tasks]]
name = "A"
classes = 2
noise = 0.5
[[tasks]]
name = "B"
classes = 2
[teacher]
alignment = 0.8
[student]
kind = "glm"
[training]
protocol = "erm"
inputs = "separate"
alpha = 1.0
ridge = 0.1
coupling = 0.5
"""
