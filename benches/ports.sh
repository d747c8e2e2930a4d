# shellcheck shell=bash
# Free TCP ports on 127.0.0.1 for the benchmarks' own servers, sourced through lib.sh (which
# defines `die`). `pick_port` appends a port to the array `ports` that nobody listens on, that
# no socket of this machine uses (a TIME-WAIT client connection's local port cannot be bound:
# thousands linger after a /metrics load run), and that was not handed out before in this run;
# call it in the current shell, not inside $(...), or the array forgets what it handed out.
ports=()
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# port_used PORT: some TCP socket has PORT as its local or remote port (/proc/net/tcp{,6}).
port_used() { grep -q ":$(printf '%04X' "$1") " /proc/net/tcp /proc/net/tcp6 2>/dev/null; }
pick_port() {
    local p tries=0
    while :; do
        p=$((20000 + RANDOM % 40000))
        tries=$((tries + 1))
        [ "$tries" -lt 500 ] || die "no free port found"
        port_open "$p" && continue
        port_used "$p" && continue
        [[ " ${ports[*]} " == *" $p "* ]] && continue
        ports+=("$p")
        return
    done
}
