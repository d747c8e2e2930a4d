# shellcheck shell=bash
# Free TCP ports on 127.0.0.1 for the benchmarks' own servers, sourced by compare.sh and
# backup.sh (which define `die`). `pick_port` appends a port nobody listens on to the array
# `ports`, never one already handed out in this run; call it in the current shell, not inside
# $(...), or the array forgets what it handed out.
ports=()
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {
    local p tries=0
    while :; do
        p=$((20000 + RANDOM % 40000))
        tries=$((tries + 1))
        [ "$tries" -lt 500 ] || die "no free port found"
        port_open "$p" && continue
        [[ " ${ports[*]} " == *" $p "* ]] && continue
        ports+=("$p")
        return
    done
}
