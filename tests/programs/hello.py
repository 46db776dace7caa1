"""Test program: prints, publishes one interim result per iteration, returns its inputs."""


def main(backend, user_messenger, **kwargs):
    iterations = kwargs.get("iterations", 3)
    print(f"hello from {backend.name}")
    for i in range(iterations):
        user_messenger.publish({"iteration": i})
    return {"inputs": kwargs, "backend": backend.name}
