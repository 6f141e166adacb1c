"""Build both native parts with one `pip install .`.

- the cffi extension `shmcli._channel` (API mode, out of line), built from
  native/channel_build.py;
- the Redis module `shmcli/shm_module.so`, built as a plain shared library
  through setuptools' extension machinery (it needs no Python symbols), so
  `shmcli --module-path` can point redis-server at it.
"""

import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

C_FLAGS = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE",
           "-fvisibility=hidden"]
CHANNEL = ["native/channel/shm_ring.c", "native/channel/shm_wait.c"]
MODULE = CHANNEL + [
    os.path.join("native/module", name)
    for name in ("shm_module.c", "rm_api.c", "config.c", "session.c", "socket_location.c",
                 "server_config.c",
                 "executor.c", "request_intake.c", "resp_request.c", "command_lookup.c",
                 "command_policy.c", "command_call.c", "connection_state.c", "reply_output.c",
                 "client_capabilities.c", "worker.c")
]
REDIS_MODULE = "shmcli.shm_module"


class BuildNative(build_ext):
    def get_ext_filename(self, fullname):
        # Called with the dotted name and with its last part alone.
        if fullname.split(".")[-1] == REDIS_MODULE.split(".")[-1]:  # not a Python extension
            return os.path.join(*fullname.split(".")) + ".so"
        return super().get_ext_filename(fullname)

    def get_export_symbols(self, ext):
        if ext.name == REDIS_MODULE:
            return ["RedisModule_OnLoad", "RedisModule_OnUnload"]
        return super().get_export_symbols(ext)


setup(
    ext_modules=[
        Extension(REDIS_MODULE, sources=MODULE, extra_compile_args=C_FLAGS,
                  extra_link_args=["-pthread"]),
    ],
    cffi_modules=["native/channel_build.py:ffibuilder"],
    cmdclass={"build_ext": BuildNative},
)
