"""The texts of `shmcli --help` and `shmcli --version`.

The options are redis-cli's, listed in the order redis-cli lists them so a
redis-cli user finds them where they expect, followed by shmcli's own.
"""

from __future__ import annotations

COMPATIBLE_WITH = "redis-cli 7.0.15"


def shmcli_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # 20 ms: only when asked
    try:
        return version("shmcli")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def version_text() -> str:
    return f"shmcli {shmcli_version()} ({COMPATIBLE_WITH} compatible)\n"


USAGE = """\
shmcli {version}: a drop-in {compatible} that reaches a local server through
shared memory when the server has the shmcli module loaded.

Usage: shmcli [OPTIONS] [cmd [arg [arg ...]]]

Connection
  -h <hostname>      Server host name (default: 127.0.0.1).
  -p <port>          Server port (default: 6379).
  -s <socket>        Server unix socket (overrides -h and -p).
  -a <password>      Password for AUTH. The REDISCLI_AUTH environment variable
                     is safer; -a wins when both are given.
  --pass <password>  Same as -a.
  --user <username>  ACL user name for AUTH; needs a password.
  --askpass          Read the password from the terminal, masked; -a and
                     REDISCLI_AUTH are then ignored.
  -u <uri>           redis://[[user:]password@]host[:port][/db]
  -n <db>            Database number.
  -2 / -3            Speak RESP2 / RESP3 (HELLO 3) on the connection.
  -t <seconds>       Connect and reply timeout; decimals allowed.
  -c                 Cluster mode: follow MOVED and ASK redirections to the
                     node they name, as redis-cli -c.
  --no-auth-warning  Do not warn about a password on the command line.

Commands and input
  -r <repeat>        Run the command this many times (negative: forever).
  -i <interval>      Wait this many seconds after each command (decimals
                     allowed). Also the pause per cycle of --scan and --stat,
                     and per 100 keys of --bigkeys and --memkeys.
  -x                 Read the last argument from standard input.
  -X <tag>           Replace the argument equal to <tag> with standard input.
  -e                 Exit with status 1 when the server replies with an error.
  --quoted-input     Unquote every argument first ("\\x00", "\\n"...).
  --eval <file>      EVAL the Lua script in <file>; keys and arguments follow,
                     separated by a lone comma.
  With no command, commands are read one per line from standard input when it
  is not a terminal.

Output
  --raw              Raw replies (the default when stdout is not a terminal).
  --no-raw           Human format even when stdout is not a terminal.
  --csv              CSV.
  --json             JSON (turns RESP3 on unless -2 is given).
  --quoted-json      JSON with ASCII-only escaped strings.
  -d <delimiter>     Between the elements of a raw multi-bulk reply (default \\n).
  -D <delimiter>     Between raw replies (default \\n).
  --show-pushes <yn> Print RESP3 push messages (default: yes on a terminal).

Latency
  --latency          PING round trips 10 ms apart: min, max and avg in ms, timed
                     to the microsecond. Live on a terminal until Ctrl-C, which
                     prints a summary; otherwise one line after -i seconds
                     (default 1).
  --latency-history  Like --latency, in windows of -i seconds (default 15).
  --latency-dist     A latency spectrum every -i seconds (default 1), with
                     buckets below 10 us; needs 256 colours (--mono: grey).
  --latency-percentiles  Also print p50, p99 and p99.9.
  --intrinsic-latency <sec>  Measure this machine's own scheduling latency for
                     <sec> seconds (no server needed).

Special modes
  --pipe             Send raw Redis protocol (or inline commands) from stdin.
  --pipe-timeout <n> In --pipe mode, give up when no reply came <n> seconds
                     after the input ended (default: 30; 0: wait forever).
  --scan             List every key with SCAN.
  --pattern <pat>    SCAN MATCH pattern for --scan, --bigkeys, --memkeys.
  --quoted-pattern <pat>  The same, unquoted first for binary patterns.
  --count <n>        SCAN COUNT for --scan.
  --bigkeys          Find the biggest key of each type, by element count.
  --memkeys          Find the biggest key of each type, by MEMORY USAGE.
  --memkeys-samples <n>  MEMORY USAGE ... SAMPLES <n> for --memkeys.
  --stat             Rolling server statistics, one line per interval.

shmcli's own options
  --shm auto|require|off  Use shared memory when the server offers it (auto,
                     the default), insist on it (require), or never (off).
  --latency-compare  The same PING over shared memory, the unix socket and TCP,
                     interleaved, 1 ms apart, for -i seconds (default 5): a
                     table and a bar chart (--csv and --json too).
  --module-path      Print the path of the bundled Redis module and exit.
  --verbose          Also tell, on stderr, which transport carried a command.

Help
  --help             This text.
  -v, --version      The version.

Examples
  cat /etc/passwd | shmcli -x set mypasswd
  shmcli -r 100 lpush mylist x
  shmcli --eval myscript.lua key1 key2 , arg1 arg2
  shmcli --scan --pattern 'user:*'
  redis-server --loadmodule "$(shmcli --module-path)"

With no command and a terminal on stdin, shmcli starts an interactive shell.
"""


def usage_text() -> str:
    return USAGE.format(version=shmcli_version(), compatible=COMPATIBLE_WITH)
