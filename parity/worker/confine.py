"""The worker confined, before it imports anything of the user's: its resource limits (address space, CPU time, file
size, no core) and, as root, the drop to a uid of its own, for good."""

import os
import sys


def set_limits(job):
    """The job's limits on this process: address space, CPU time, file size, and no core file."""
    import resource

    mem = job["max_memory"] << 20
    for which, value in ((resource.RLIMIT_AS, mem), (resource.RLIMIT_CPU, job["cpu_seconds"]),
                         (resource.RLIMIT_FSIZE, job["file_limit"]), (resource.RLIMIT_CORE, 0)):
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            pass


def drop_privileges(job):
    """As root: to the worker's own uid, for good. The interpreter's own files may lie where that uid cannot go (a
    home folder closed to others), so every folder of sys.path is opened first and reached after the drop through
    its open descriptor (/proc/self/fd/N): the user's code can still import the standard library and the packages
    installed, and nothing else it could not read anyway."""
    import resource

    uid = job.get("uid")
    if uid is None or os.geteuid() != 0:
        return
    mapping = {}
    for path in sys.path:
        if path and path not in mapping and os.path.isdir(path):
            mapping[path] = f"/proc/self/fd/{os.open(path, os.O_RDONLY | os.O_DIRECTORY)}"
    longest_first = sorted(mapping.items(), key=lambda kv: -len(kv[0]))

    def remap(path):
        for old, new in longest_first:
            if path == old or path.startswith(old + os.sep):
                return new + path[len(old):]
        return path

    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    try:
        resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))  # counted per uid: this worker's own processes
    except (ValueError, OSError):
        pass
    sys.path[:] = [remap(p) for p in sys.path]
    for module in list(sys.modules.values()):
        search = getattr(module, "__path__", None)
        if search is not None:
            try:
                search[:] = [remap(p) for p in search]
            except TypeError:  # a namespace package's path recomputes itself from sys.path
                pass
    sys.path_importer_cache.clear()
