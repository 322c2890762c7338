"""Start MXNet's parameter-server job (scheduler, servers, workers) for dist_sync / dist_async training
(the command is ``python -m lightcnn launch``, :mod:`lightcnn.cli.launch`).

MXNet's shipped tools/launch.py does the same job but breaks on Python >= 3.9 (Thread.isAlive) and advertises the
host's external address even for a local job. Every role is the same MXNet: a process that imports mxnet with
DMLC_ROLE=server or scheduler becomes that node and exits when the job ends.
"""
import os
import shlex
import subprocess
import sys
import time

SERVER_COMMAND = [sys.executable, "-c", "import mxnet"]


def role_env(role, num_workers, num_servers, root_uri, port, interface=None, node_host=None):
    env = {"DMLC_ROLE": role, "DMLC_PS_ROOT_URI": root_uri, "DMLC_PS_ROOT_PORT": str(port),
           "DMLC_NUM_WORKER": str(num_workers), "DMLC_NUM_SERVER": str(num_servers)}
    if interface:
        env["DMLC_INTERFACE"] = interface
    if node_host:
        env["DMLC_NODE_HOST"] = node_host
    return env


def _ssh_command(host, env, command, ssh_port):
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    remote = f"cd {shlex.quote(os.getcwd())} && env {exports} {' '.join(shlex.quote(c) for c in command)}"
    return ["ssh", "-o", "StrictHostKeyChecking=no", "-p", str(ssh_port), host, remote]


def launch(command, num_workers, num_servers=1, hosts=None, scheduler_ip=None, port=9091, interface=None,
           timeout=None, ssh_port=22, env=None, stdout=None, stderr=None):
    """Run the job; return the workers' exit codes (a list). Servers and scheduler are ended with the job.

    Without ``hosts`` everything runs here on 127.0.0.1 over the loopback interface.
    ``timeout`` (seconds) ends a job that hangs, so a test of it always stops by itself.
    """
    if num_workers < 1 or num_servers < 1:
        raise ValueError("a parameter-server job needs at least one worker and one server")
    local = not hosts
    if local:
        root_uri, interface, node_host = "127.0.0.1", interface or "lo", "127.0.0.1"
    else:
        if not scheduler_ip:
            raise ValueError("--scheduler-ip (this machine's address as the hosts reach it) is needed with --hostfile")
        root_uri, node_host = scheduler_ip, None
    base = dict(os.environ if env is None else env)

    def start(role, cmd, host=None, rank_env=None):
        role_vars = role_env(role, num_workers, num_servers, root_uri, port, interface, node_host)
        role_vars.update(rank_env or {})
        if host is None:
            return subprocess.Popen(cmd, env={**base, **role_vars}, stdout=stdout, stderr=stderr)
        return subprocess.Popen(_ssh_command(host, role_vars, cmd, ssh_port), stdout=stdout, stderr=stderr)

    background = [start("scheduler", SERVER_COMMAND)]
    workers = []
    try:
        for i in range(num_servers):
            background.append(start("server", SERVER_COMMAND, None if local else hosts[i % len(hosts)]))
        for i in range(num_workers):
            workers.append(start("worker", command, None if local else hosts[i % len(hosts)]))
        deadline = None if timeout is None else time.time() + timeout
        codes = []
        for worker in workers:
            remaining = None if deadline is None else max(deadline - time.time(), 0.1)
            try:
                codes.append(worker.wait(timeout=remaining))
            except subprocess.TimeoutExpired:
                raise TimeoutError(f"the distributed job did not finish within {timeout} s") from None
        return codes
    finally:
        for proc in workers + background:
            if proc.poll() is None:
                # servers and the scheduler exit by themselves once every worker has finalised; give them a moment
                try:
                    proc.wait(timeout=10 if proc in background else 0.1)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def read_hostfile(path):
    with open(path) as f:
        hosts = [line.split("#")[0].strip() for line in f]
    hosts = [h for h in hosts if h]
    if not hosts:
        raise ValueError(f"hostfile {path} lists no host")
    return hosts
