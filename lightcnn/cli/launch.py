"""Start MXNet's parameter-server job (scheduler, servers, workers) for dist_sync / dist_async training.

    # two workers and one server on this machine (loopback only)
    python -m lightcnn launch -n 2 -s 1 -- python train_lightcnn.py --kv-store dist_sync ...

    # several machines over ssh: workers and servers round-robin over the hosts, the scheduler here
    python -m lightcnn launch -n 4 -s 2 --hostfile hosts.txt --scheduler-ip 10.0.0.1 -- \
        python train_lightcnn.py --kv-store dist_sync ...

Every role is the same MXNet (:mod:`lightcnn.training.launch`).
"""
import argparse
import sys

from lightcnn.training.launch import launch, read_hostfile


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lightcnn launch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--num-workers", type=int, required=True, help="worker processes")
    parser.add_argument("-s", "--num-servers", type=int, default=None, help="server processes (default: workers)")
    parser.add_argument("-H", "--hostfile", help="one host per line, reached with ssh; omit for this machine only")
    parser.add_argument("--scheduler-ip", help="this machine's address as the hosts reach it (with --hostfile)")
    parser.add_argument("--port", type=int, default=9091, help="scheduler port")
    parser.add_argument("--interface", help="network interface the nodes bind (default lo for a local job)")
    parser.add_argument("--ssh-port", type=int, default=22)
    parser.add_argument("--timeout", type=float, default=None, help="end the job after this many seconds")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the worker command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the worker command after --")
    hosts = read_hostfile(args.hostfile) if args.hostfile else None
    codes = launch(command, args.num_workers, args.num_servers or args.num_workers, hosts, args.scheduler_ip,
                   args.port, args.interface, args.timeout, args.ssh_port)
    failed = [i for i, code in enumerate(codes) if code]
    if failed:
        print(f"workers {failed} failed with exit codes {[codes[i] for i in failed]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
