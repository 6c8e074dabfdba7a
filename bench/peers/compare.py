#!/usr/bin/python3
"""Side-by-side delivery benchmark: kurier vs the smtp-source ceiling vs Postfix vs Haraka.

One campaign (N personalised ~5 KB messages over M domains) delivered to Postfix
smtp-sink MX hosts on 127.77.1.K:25, each domain's MX resolved through a private
dnsmasq on 127.77.0.53:53. Every system runs in the same invocation, one after the
other, against the same sinks; the sinks' own counters (-c) say when the last message
arrived. Results: bench/results/peers.{json,md,png}.

Runs as root (port 25 and 53 on loopback, Postfix's private instance, a mount
namespace for Postfix's resolv.conf). Everything started is stopped by PID; every
wait is bounded. Needs /usr/bin/python3 (Debian's, for matplotlib).
"""
import argparse
import datetime
import json
import os
import re
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DNS_ADDR = "127.77.0.53"
SINK_NET = "127.77.1."          # sink K (1-based) listens on 127.77.1.K:25
POSTFIX_SMTPD = ("127.0.0.1", 10025)
HARAKA_SMTPD = ("127.0.0.1", 10026)
SENDER_DOMAIN = "sender.bench.test"
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def log(*args):
    print("[peers %s]" % time.strftime("%H:%M:%S"), *args, flush=True)


# --------------------------------------------------------------------------- processes

class Procs:
    """Every process the benchmark starts, stopped by PID (process group) at the end."""

    def __init__(self):
        self.procs = []

    def start(self, argv, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(argv, start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def stop(self, p, timeout=10):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in list(reversed(self.procs)):
            self.stop(p)


def proc_children():
    """pid -> list of child pids, from /proc."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(name))
    return children


def tree(root):
    kids = proc_children()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def pss_bytes(pid):
    """Proportional set size: shared pages (Postfix's many processes map the same
    libraries) are split between the processes sharing them, so a tree's sum is not
    inflated the way summing RSS is."""
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def tree_cpu_rss(root):
    """CPU seconds of a process tree (live members' own time plus what they reaped)
    and its memory (sum of PSS) in bytes."""
    cpu, rss = 0, 0
    for pid in tree(root):
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            rss += pss_bytes(pid)
        except OSError:
            continue
        # fields[0] is state: utime=11, stime=12, cutime=13, cstime=14 (0-based after ')')
        cpu += sum(int(x) for x in fields[11:15])
    return cpu / TICKS, rss


class TreeSampler:
    """Samples a process tree every `period` s: peak RSS (sum over the tree) and CPU."""

    def __init__(self, root_pid, period=0.2):
        self.root, self.period = root_pid, period
        self.peak_rss = 0
        self.cpu0, _ = tree_cpu_rss(root_pid)
        self.cpu1 = self.cpu0
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop_flag.is_set():
            cpu, rss = tree_cpu_rss(self.root)
            if cpu:
                self.cpu1 = max(self.cpu1, cpu)
            self.peak_rss = max(self.peak_rss, rss)
            self.stop_flag.wait(self.period)

    def finish(self):
        self.stop_flag.set()
        self.thread.join()
        cpu, rss = tree_cpu_rss(self.root)
        self.cpu1 = max(self.cpu1, cpu)
        self.peak_rss = max(self.peak_rss, rss)
        return self.cpu1 - self.cpu0, self.peak_rss


# --------------------------------------------------------------------------- environment

class Sinks:
    """One Postfix smtp-sink per domain; counts messages ('.' received) from their -c
    output, read in batches so the counting costs little CPU."""

    def __init__(self, procs, domains, workdir):
        self.sel = selectors.DefaultSelector()
        self.count = {}
        self.procs = []
        for k in range(1, domains + 1):
            p = procs.start(["smtp-sink", "-c", "-u", "nobody", "-m", "2048", "-h", "mx.d%d.bench.test" % k,
                             "%s%d:25" % (SINK_NET, k), "2048"],
                            stdout=subprocess.PIPE, stderr=open(os.path.join(workdir, "sink-%d.err" % k), "w"))
            os.set_blocking(p.stdout.fileno(), False)
            self.sel.register(p.stdout, selectors.EVENT_READ, k)
            self.count[k] = 0
            self.procs.append(p)
        self.tail = {k: b"" for k in self.count}

    def poll(self, timeout=0.0):
        for key, _ in self.sel.select(timeout):
            k = key.data
            try:
                data = os.read(key.fileobj.fileno(), 1 << 16)
            except BlockingIOError:
                continue
            if not data:
                self.sel.unregister(key.fileobj)
                continue
            buf = self.tail[k] + data
            m = None
            for m in re.finditer(rb"mesg=(\d+)", buf):
                pass
            if m:
                self.count[k] = int(m.group(1))
            self.tail[k] = buf[-40:]
        return sum(self.count.values())

    def total(self):
        return self.poll(0.0)

    def cpu(self):
        """CPU seconds the sinks have used so far: the receiving side's share of the
        machine, the same for every system."""
        return sum(tree_cpu_rss(p.pid)[0] for p in self.procs)

    def wait_for(self, target, deadline, period=0.02, progress=None):
        """Polls until the total reaches target; returns the monotonic time it did
        (None on deadline)."""
        while time.monotonic() < deadline:
            n = self.poll(period)
            if n >= target:
                return time.monotonic()
            if progress:
                progress(n)
        return None


def start_dns(procs, domains, workdir):
    conf = os.path.join(workdir, "dnsmasq.conf")
    with open(conf, "w") as f:
        f.write("local=/bench.test/\n")
        for k in range(1, domains + 1):
            f.write("mx-host=d%d.bench.test,mx.d%d.bench.test,10\n" % (k, k))
            f.write("host-record=mx.d%d.bench.test,%s%d\n" % (k, SINK_NET, k))
        f.write("host-record=mta.%s,127.0.0.1\n" % SENDER_DOMAIN)
    return procs.start(["/usr/sbin/dnsmasq", "-k", "--conf-file=" + conf, "--port=53", "--listen-address=" + DNS_ADDR,
                        "--bind-interfaces", "--no-resolv", "--no-hosts", "--pid-file", "--cache-size=1000",
                        "--log-facility=" + os.path.join(workdir, "dnsmasq.log")])


def wait_port(host, port, timeout=15):
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def peer_listening(procs, proc, address, name, logpath, timeout=15):
    """Waits for a peer MTA's SMTP port, then a second for it to settle. If it never
    answers: says so, stops it and returns False."""
    if not wait_port(*address, timeout=timeout):
        log("%s did not start; see" % name, logpath)
        procs.stop(proc)
        return False
    time.sleep(1)
    return True


def sink_baseline(env):
    """The sinks' message count before a run; notes their CPU time in env too."""
    base = env["sinks"].total()
    env["sink_cpu0"] = env["sinks"].cpu()
    return base


def start_peer_run(env, n, pid, address, tag):
    """Starts sampling the peer's process tree (root `pid`), notes the sinks' baseline
    and starts the sources that submit `n` messages to the peer at `address`.
    Returns (sampler, base, t0, sources)."""
    sampler = TreeSampler(pid)
    base = sink_baseline(env)
    t0 = time.monotonic()
    ps = run_sources(env["procs"], n, env["domains"], lambda k: address, env["msgfile"], env["submit_sessions"],
                     env["work"], tag)
    return sampler, base, t0, ps


def percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    idx = min(len(values) - 1, max(0, int(round(q / 100.0 * (len(values) - 1)))))
    return values[idx]


# --------------------------------------------------------------------------- the campaign

FIRST = ["Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hugo", "Ines", "Jonas"]
CITY = ["Hamburg", "Berlin", "Lyon", "Porto", "Gent", "Graz", "Turku"]


def write_campaign(workdir, n, domains, dkim=None):
    """campaign.toml + recipients.csv + newsletter.eml in workdir/campaign-<variant>."""
    name = "bench-" + (dkim["name"] if dkim else "plain")
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    shutil.copy(os.path.join(HERE, "newsletter.eml"), os.path.join(d, "newsletter.eml"))
    with open(os.path.join(d, "recipients.csv"), "w") as f:
        f.write("email,first,last,city,code,since\n")
        for i in range(n):
            k = i % domains + 1
            f.write("%s.u%d@d%d.bench.test,%s,Schmidt,%s,S%07X,%d\n" % (
                FIRST[i % 10].lower(), i, k, FIRST[i % 10], CITY[i % 7], i, 2010 + i % 15))
    with open(os.path.join(d, "campaign.toml"), "w") as f:
        f.write('id = "%s"\nfrom = "Kurier Bench <news@%s>"\ntemplate = "newsletter.eml"\n'
                'recipients = "recipients.csv"\n[verp]\ndomain = "bounce.%s"\n' % (name, SENDER_DOMAIN, SENDER_DOMAIN))
        if dkim:
            f.write('[dkim]\ndomain = "%s"\nselector = "%s"\nkey = "%s"\n' % (SENDER_DOMAIN, dkim["selector"], dkim["key"]))
    return d


def sample_message(path):
    """A rendered instance of the newsletter, for smtp-source -F (the same size)."""
    with open(os.path.join(HERE, "newsletter.eml")) as f:
        text = f.read()
    values = {"email": "anna.u1@d1.bench.test", "first": "Anna", "last": "Schmidt", "city": "Hamburg",
              "code": "S0000001", "since": "2011"}
    for k, v in values.items():
        text = re.sub(r"\{\{\s*%s\s*\}\}" % k, v, text)
    text = text.replace("Subject:", "Message-ID: <bench.1@%s>\nDate: %s\nSubject:" % (
        SENDER_DOMAIN, time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())), 1)
    with open(path, "w") as f:
        f.write(text)
    return path


def split(n, parts):
    return [n // parts + (1 if k < n % parts else 0) for k in range(parts)]


def run_sources(procs, n, domains, target_for, msgfile, sessions, workdir, tag):
    """One smtp-source per domain (reused connections, -d), `sessions` in parallel each,
    recipients numbered (-N) in d<K>.bench.test. Returns the Popen list."""
    ps = []
    for k, count in enumerate(split(n, domains), start=1):
        if count == 0:
            continue
        host, port = target_for(k)
        ps.append(procs.start(["smtp-source", "-d", "-s", str(sessions), "-m", str(count), "-F", msgfile,
                               "-M", "mta.%s" % SENDER_DOMAIN, "-f", "news@%s" % SENDER_DOMAIN,
                               "-t", "u@d%d.bench.test" % k, "-N", "%s:%d" % (host, port)],
                              stdout=subprocess.DEVNULL,
                              stderr=open(os.path.join(workdir, "%s-source-%d.err" % (tag, k)), "w")))
    return ps


def children_cpu_rss(ps, timeout):
    """Waits up to `timeout` s for the processes (direct children), killing those still
    running then; returns their CPU seconds and peak RSS (the largest one's)."""
    cpu, rss = 0.0, 0
    deadline = time.monotonic() + timeout
    for p in ps:
        while True:
            try:
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid == 0 and time.monotonic() >= deadline:
                    log("pid %d still running after %.0f s: killed" % (p.pid, timeout))
                    os.killpg(p.pid, signal.SIGKILL)
                    pid, status, ru = os.wait4(p.pid, 0)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.02)
                continue
            p.returncode = os.waitstatus_to_exitcode(status)
            cpu += ru.ru_utime + ru.ru_stime
            rss = max(rss, ru.ru_maxrss * 1024)
            break
    return cpu, rss


def submit_and_wait(env, ps, t0, target, wait_for_arrival=True):
    """Waits for the submitting processes on a thread while the sinks are read (their
    counters stay exact and their pipes never fill). Returns (submission CPU seconds,
    submission end, time of the last arrival or None)."""
    done = {}

    def reap():
        done["cpu"], _ = children_cpu_rss(ps, env["timeout"])
        done["end"] = time.monotonic()
    reaper = threading.Thread(target=reap)
    reaper.start()
    t1 = env["sinks"].wait_for(target, t0 + env["timeout"]) if wait_for_arrival else None
    reaper.join()
    for q in ps:
        env["procs"].procs.remove(q)
    return done["cpu"], done["end"], t1


# --------------------------------------------------------------------------- systems

def run_ceiling(env, n):
    sinks, procs, work = env["sinks"], env["procs"], env["work"]
    base = sink_baseline(env)
    t0 = time.monotonic()
    ps = run_sources(procs, n, env["domains"], lambda k: ("%s%d" % (SINK_NET, k), 25), env["msgfile"],
                     env["ceiling_sessions"], work, "ceiling")
    t1 = sinks.wait_for(base + n, t0 + env["timeout"])
    cpu, rss = children_cpu_rss(ps, 30)
    for p in ps:
        procs.procs.remove(p)
    return result_for(env, "ceiling (smtp-source)", n, t0, t1, sinks.total() - base, cpu, rss, None,
                  "%d smtp-source processes x %d reused sessions, no queue; CPU and RSS of smtp-source" % (
                      env["domains"], env["ceiling_sessions"]))


def result(name, n, t0, t1, arrived, cpu, rss, latencies, note, extra=None, env=None):
    secs = (t1 - t0) if t1 else None
    sink_cpu = (env["sinks"].cpu() - env["sink_cpu0"]) if env and "sink_cpu0" in env else None
    r = {"system": name, "messages": n, "arrived": arrived, "complete": t1 is not None,
         "seconds": round(secs, 3) if secs else None,
         "msgs_per_s": round(n / secs, 1) if secs else None,
         "cpu_s_per_1000": round(cpu / n * 1000, 3) if cpu is not None else None,
         "cpu_s": round(cpu, 2) if cpu is not None else None,
         "peak_rss_mb": round(rss / 1048576, 1) if rss else None,
         "latency_p50_s": round(percentile(latencies, 50), 3) if latencies else None,
         "latency_p99_s": round(percentile(latencies, 99), 3) if latencies else None,
         "sink_cpu_s_per_1000": round(sink_cpu / n * 1000, 3) if sink_cpu is not None else None,
         "note": note}
    # What the machine could do if sender and sinks had every core to themselves: the
    # bound that CPU cost alone sets (the rest is waiting: network, fsync, scheduling).
    if r["cpu_s_per_1000"] and r["sink_cpu_s_per_1000"] is not None:
        r["cpu_bound_msgs_per_s"] = round(1000 * (os.cpu_count() or 1) / (r["cpu_s_per_1000"] + r["sink_cpu_s_per_1000"]))
    if extra:
        r.update(extra)
    log("%-28s %s msgs in %s s = %s msg/s, CPU %s s/1000, RSS %s MB, p50 %s p99 %s" % (
        name, arrived, r["seconds"], r["msgs_per_s"], r["cpu_s_per_1000"], r["peak_rss_mb"],
        r["latency_p50_s"], r["latency_p99_s"]))
    return r


def result_for(env, *args, **kw):
    return result(*args, env=env, **kw)


def iso_ms(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def run_kurier(env, n, variant):
    sinks, procs, work, build = env["sinks"], env["procs"], env["work"], env["build"]
    kurier = os.path.join(build, "engine", "kurier")
    dkim = None
    if variant not in ("plain", "events-off"):  # events-off: plain with [events] enabled = false
        dkim = {"name": variant, "selector": variant, "key": env["keys"][variant]}
    cdir = write_campaign(work, n, env["domains"], dkim)
    qdir = os.path.join(work, "queue-" + variant)
    shutil.rmtree(qdir, ignore_errors=True)
    conf = os.path.join(cdir, "kurier.toml")
    with open(os.path.join(cdir, "shaping.toml"), "w") as f:
        f.write("[default]\nconnections = %d\nmessages_per_connection = %d\nretry = [\"2s\", \"5m\"]\nmax_age = \"1h\"\n" % (
            env["connections"], env["messages_per_connection"]))
    with open(conf, "w") as f:
        f.write('[queue]\npath = "%s"\n[dns]\nservers = ["%s:53"]\n[smtp]\nhelo = "mta.%s"\nport = 25\n'
                'tls = "opportunistic"\n[shaping]\nfile = "shaping.toml"\n[verp]\nsecret = "bench-secret"\n'
                '[log]\nlevel = "warn"\n' % (qdir, DNS_ADDR, SENDER_DOMAIN))
        if variant == "events-off":
            f.write('[events]\nenabled = false\n')
    base = sink_baseline(env)
    out = open(os.path.join(work, "kurier-%s.out" % variant), "w")
    t0 = time.monotonic()
    argv = [kurier, "send", os.path.join(cdir, "campaign.toml"), "--config", conf]
    if env.get("perf"):
        # Profiling run (--perf): CPU-clock samples with call graphs; the figures of a
        # profiled run include perf's own overhead.
        argv = ["perf", "record", "-F", "499", "-g", "-q", "-o",
                os.path.join(env["perf"], "kurier-%s.perf.data" % variant)] + argv
    p = procs.start(argv, stdout=out, stderr=out)
    t1 = sinks.wait_for(base + n, t0 + env["timeout"])
    cpu, rss = children_cpu_rss([p], 60)
    procs.procs.remove(p)
    t_exit = time.monotonic()
    arrived = sinks.total() - base
    # Submit-to-250 latency from kurier's own attempt log: 250 time minus intake time.
    rep = subprocess.run([kurier, "report", "bench-" + (variant if dkim else "plain"), "--config", conf, "--format", "json"],
                         capture_output=True, text=True, timeout=300)
    latencies, delivered = [], 0
    try:
        doc = json.loads(rep.stdout)
        created = iso_ms(doc["created"])
        for r in doc["recipients"]:
            for a in r["attempt_log"]:
                if a["code"] == 250:
                    latencies.append(iso_ms(a["time"]) - created)
                    delivered += 1
    except (ValueError, KeyError) as e:
        log("kurier report unreadable:", e, rep.stderr[:300])
    label = {"plain": "kurier", "events-off": "kurier, event log off", "rsa": "kurier + DKIM rsa-sha256", "ed25519": "kurier + DKIM ed25519"}[variant]
    return result_for(env, label, n, t0, t1, arrived, cpu, rss, latencies,
                  "kurier send, durable queue, %d connections/domain, %d msgs/connection; latency = 250 time - intake time "
                  "(the whole campaign is submitted at t0)" % (env["connections"], env["messages_per_connection"]),
                  {"exit_code": p.returncode, "process_exit_s": round(t_exit - t0, 3), "delivered_in_report": delivered})


POSTFIX_MAIN = """\
compatibility_level = 3.6
queue_directory = {spool}
data_directory = {data}
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = mta.{sender}
mydomain = {sender}
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relay_domains =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
maillog_file = {maillog}
maillog_file_prefixes = {pdir}
# Throughput knobs: direct MX delivery with the connection cache on, the destination
# concurrency raised to kurier's per-domain connections, no inflow throttle.
smtp_host_lookup = dns
smtp_connection_cache_on_demand = yes
smtp_connection_reuse_count_limit = {per_conn}
default_destination_concurrency_limit = {conc}
smtp_destination_concurrency_limit = {conc}
initial_destination_concurrency = {conc}
default_process_limit = {procs}
in_flow_delay = 0
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtputf8_enable = no
biff = no
"""


def postfix_master_cf(port):
    """Debian's master.cf with chroot off everywhere and smtpd on 127.0.0.1:port."""
    out = []
    with open("/etc/postfix/master.cf") as f:
        for line in f:
            if line.startswith("#") or line.startswith(" ") or not line.strip():
                out.append(line)
                continue
            cols = line.split()
            if cols[0] == "smtp" and cols[1] == "inet":
                cols[0] = "%s:%d" % (POSTFIX_SMTPD[0], port)
            if len(cols) > 4 and cols[4] == "y":
                cols[4] = "n"
            out.append(" ".join(cols) + "\n")
    return "".join(out)


def run_postfix(env, n, queue_first=False):
    sinks, procs, work = env["sinks"], env["procs"], env["work"]
    pdir = os.path.join(work, "postfix")
    shutil.rmtree(pdir, ignore_errors=True)
    etc, spool, data = (os.path.join(pdir, x) for x in ("etc", "spool", "data"))
    for d in (etc, spool, data):
        os.makedirs(d)
    maillog = os.path.join(pdir, "maillog")
    with open(os.path.join(etc, "main.cf"), "w") as f:
        f.write(POSTFIX_MAIN.format(pdir=pdir, spool=spool, data=data, sender=SENDER_DOMAIN, maillog=maillog,
                                    conc=env["connections"], procs=env["connections"] * env["domains"] + 200,
                                    per_conn=env["messages_per_connection"]))
        if queue_first:
            # Everything submitted goes on hold; released at once when submission ends.
            f.write("smtpd_client_restrictions = check_client_access static:HOLD\n")
    with open(os.path.join(etc, "master.cf"), "w") as f:
        f.write(postfix_master_cf(POSTFIX_SMTPD[1]))
    with open(os.path.join(pdir, "resolv.conf"), "w") as f:
        f.write("nameserver %s\noptions timeout:1 attempts:2\n" % DNS_ADDR)
    os.chown(data, *owner("postfix"))
    subprocess.run(["postfix", "-c", etc, "set-permissions"], capture_output=True, timeout=60)
    chk = subprocess.run(["postfix", "-c", etc, "check"], capture_output=True, text=True, timeout=60)
    if chk.returncode != 0:
        log("postfix check:", chk.stderr[-500:])
    # Postfix resolves with the system resolver (libc), which reads /etc/resolv.conf:
    # a private mount namespace gives this instance its own file, chroot off, and
    # leaves the machine's resolv.conf untouched.
    out = open(os.path.join(pdir, "master.out"), "w")
    master = procs.start(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                          'mount --bind "$0" /etc/resolv.conf && exec postfix -c "$1" start-fg',
                          os.path.join(pdir, "resolv.conf"), etc], stdout=out, stderr=out)
    if not peer_listening(procs, master, POSTFIX_SMTPD, "postfix", os.path.join(pdir, "master.out")):
        return None
    sampler, base, t0, ps = start_peer_run(env, n, master.pid, POSTFIX_SMTPD, "postfix")
    src_cpu, t_submitted, t1 = submit_and_wait(env, ps, t0, base + n, wait_for_arrival=not queue_first)
    submit_secs = t_submitted - t0
    if queue_first:
        # Measure from the release: the queue is full, nothing is being submitted.
        cpu_before, _ = tree_cpu_rss(master.pid)
        subprocess.run(["postsuper", "-c", etc, "-H", "ALL"], capture_output=True, timeout=120)
        t0 = time.monotonic()
        subprocess.run(["postqueue", "-c", etc, "-f"], capture_output=True, timeout=120)
        sampler.cpu0 = cpu_before
        t1 = sinks.wait_for(base + n, t0 + env["timeout"])
    cpu, rss = sampler.finish()
    arrived = sinks.total() - base
    subprocess.run(["postfix", "-c", etc, "stop"], capture_output=True, timeout=60)
    try:
        master.wait(20)
    except subprocess.TimeoutExpired:
        pass
    procs.stop(master)
    latencies, sent = [], 0
    try:
        with open(maillog, errors="replace") as f:
            for line in f:
                if " status=sent " in line:
                    m = re.search(r" delay=([0-9.]+)", line)
                    if m:
                        latencies.append(float(m.group(1)))
                        sent += 1
    except OSError:
        pass
    name = "Postfix (queue filled first)" if queue_first else "Postfix"
    return result_for(env, name, n, t0, t1, arrived, cpu, rss, latencies,
                  "private instance, direct MX, connection cache, destination concurrency %d; submitted by %d "
                  "smtp-source x %d sessions (submit took %.1f s, %.2f CPU s not counted)%s; latency = delay= "
                  "(arrival in Postfix to 250)" % (
                      env["connections"], env["domains"], env["submit_sessions"], submit_secs, src_cpu,
                      "; submitted on hold, timed from the release (postsuper -H ALL, postqueue -f)"
                      if queue_first else ""),
                  {"status_sent_in_log": sent})


def owner(user):
    import pwd
    pw = pwd.getpwnam(user)
    return pw.pw_uid, pw.pw_gid


HARAKA_PLUGIN = """\
// bench_outbound: relays everything from loopback to the recipients' MX hosts and
// points Node's resolvers at the bench dnsmasq: the default one (A lookups in
// outbound/hmail.js) and haraka-net-utils' own Resolver instance (MX lookups).
const dns = require('dns');
exports.register = function () {
    const servers = ['%s'];
    dns.setServers(servers);
    dns.promises.setServers(servers);
    try {  // haraka-net-utils' own resolver; older Haraka releases have none
        require('haraka-net-utils/lib/dns_config').getDnsResolver().setServers(servers);
    } catch (e) {
        if (e.code !== 'MODULE_NOT_FOUND') throw e;
    }
};
exports.hook_connect = function (next, connection) {
    connection.relaying = true;
    next();
};
exports.hook_rcpt = function (next) {
    next(OK);
};
""" % DNS_ADDR


def run_haraka(env, n):
    sinks, procs, work = env["sinks"], env["procs"], env["work"]
    haraka_bin = os.path.join(env["peers_dir"], "haraka", "node_modules", ".bin", "haraka")
    if not os.path.exists(haraka_bin):
        log("Haraka not installed at", haraka_bin, "- skipped")
        return None
    inst = os.path.join(work, "haraka")
    shutil.rmtree(inst, ignore_errors=True)
    subprocess.run([haraka_bin, "-i", inst], capture_output=True, timeout=120)
    cfg = os.path.join(inst, "config")
    os.makedirs(os.path.join(inst, "plugins"), exist_ok=True)
    with open(os.path.join(inst, "plugins", "bench_outbound.js"), "w") as f:
        f.write(HARAKA_PLUGIN)
    with open(os.path.join(cfg, "plugins"), "w") as f:
        f.write("bench_outbound\n")
    with open(os.path.join(cfg, "smtp.ini"), "w") as f:
        f.write("listen=%s:%d\nnodes=0\n" % HARAKA_SMTPD)
    with open(os.path.join(cfg, "log.ini"), "w") as f:
        f.write("[main]\nlevel=notice\ntimestamps=true\n")
    with open(os.path.join(cfg, "outbound.ini"), "w") as f:
        f.write("concurrency_max=%d\nenable_tls=false\nlocal_mx_ok=true\nmaxTempFailures=2\n" % (env["connections"] * env["domains"]))
    with open(os.path.join(cfg, "me"), "w") as f:
        f.write("mta.%s\n" % SENDER_DOMAIN)
    for name in ("host_list",):
        open(os.path.join(cfg, name), "w").close()
    logf = os.path.join(inst, "haraka.log")
    out = open(logf, "w")
    p = procs.start([haraka_bin, "-c", inst], stdout=out, stderr=subprocess.STDOUT, cwd=inst)
    if not peer_listening(procs, p, HARAKA_SMTPD, "Haraka", logf, timeout=30):
        return None
    sampler, base, t0, ps = start_peer_run(env, n, p.pid, HARAKA_SMTPD, "haraka")
    src_cpu, t_submitted, t1 = submit_and_wait(env, ps, t0, base + n)
    cpu, rss = sampler.finish()
    arrived = sinks.total() - base
    procs.stop(p)
    latencies = []
    with open(logf, errors="replace") as f:
        for line in f:
            if "delivered" in line and "delay=" in line:
                m = re.search(r"delay=([0-9.]+)", line)
                if m:
                    latencies.append(float(m.group(1)))
    return result_for(env, "Haraka", n, t0, t1, arrived, cpu, rss, latencies,
                  "outbound mode, concurrency_max %d; submitted by %d smtp-source x %d sessions (submit took %.1f s, "
                  "%.2f CPU s not counted); latency = delay= of the delivered log line" % (
                      env["connections"] * env["domains"], env["domains"], env["submit_sessions"], t_submitted - t0,
                      src_cpu), {"delivered_in_log": len(latencies)})


# --------------------------------------------------------------------------- output

def openssl_speed():
    """RSA-2048 and Ed25519 signatures/s of all this machine's cores (openssl speed
    -multi), as measured now: on a shared machine the figure moves with the load."""
    out = {}
    cores = os.cpu_count() or 1
    for alg in ("rsa2048", "ed25519"):
        r = subprocess.run(["openssl", "speed", "-seconds", "2", "-multi", str(cores), alg],
                           capture_output=True, text=True, timeout=120)
        lines = r.stdout.splitlines()
        for i, line in enumerate(lines):
            if "sign/s" in line and i + 1 < len(lines):
                out[alg] = float(lines[i + 1].split()[-2])
    return out


def write_outputs(results, meta, outdir):
    os.makedirs(outdir, exist_ok=True)
    by = {r["system"]: r for r in results if r}
    k = by.get("kurier")

    def ratio(a, b):
        if a and b and a.get("msgs_per_s") and b.get("msgs_per_s"):
            return round(a["msgs_per_s"] / b["msgs_per_s"], 2)
        return None
    ratios = {
        "kurier/ceiling": ratio(k, by.get("ceiling (smtp-source)")),
        "kurier/Postfix": ratio(k, by.get("Postfix")),
        "kurier/Postfix (queue filled first)": ratio(k, by.get("Postfix (queue filled first)")),
        "kurier/Haraka": ratio(k, by.get("Haraka")),
        "kurier ed25519/ceiling": ratio(by.get("kurier + DKIM ed25519"), by.get("ceiling (smtp-source)")),
        "kurier rsa/ceiling": ratio(by.get("kurier + DKIM rsa-sha256"), by.get("ceiling (smtp-source)")),
    }
    rsa = by.get("kurier + DKIM rsa-sha256")
    if rsa and rsa.get("msgs_per_s") and meta.get("openssl_speed", {}).get("rsa2048"):
        ratios["kurier rsa/openssl rsa2048 sign/s"] = round(rsa["msgs_per_s"] / meta["openssl_speed"]["rsa2048"], 2)
    doc = {"meta": meta, "results": [r for r in results if r], "ratios": ratios}
    with open(os.path.join(outdir, "peers.json"), "w") as f:
        json.dump(doc, f, indent=2)
    lines = ["# kurier vs the ceiling, Postfix and Haraka", "",
             "Generated by `bench/run-peers.sh` on %s: %d messages of ~%d bytes over %d domains, one run, "
             "%d cores, load average at start %s, at the end %s; kurier from `%s` (%s)." % (
                 meta["started"], meta["messages"], meta["message_bytes"], meta["domains"], meta["cores"],
                 meta["loadavg"], meta.get("loadavg_end"), meta.get("build"), meta.get("build_type")), "",
             "Run, in this order: %s%s." % (", ".join(meta["systems"]), before_text(meta)), "",
             "| system | msg/s | seconds | CPU s / 1000 msgs | peak RSS MB | submit-to-250 p50 s | p99 s | arrived "
             "| sinks' CPU s / 1000 | CPU-bound limit msg/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in doc["results"]:
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s/%s | %s | %s |" % (
            r["system"], r["msgs_per_s"], r["seconds"], r["cpu_s_per_1000"], r["peak_rss_mb"], r["latency_p50_s"],
            r["latency_p99_s"], r["arrived"], r["messages"], r.get("sink_cpu_s_per_1000"),
            r.get("cpu_bound_msgs_per_s")))
    lines += ["", "CPU-bound limit = cores / (sender CPU + sinks' CPU) per message: the rate at which "
              "this sender and the sinks would fill both cores if nothing else ran."]
    lines += ["", "| ratio | value |", "|---|---:|"]
    lines += ["| %s | %s |" % (k2, v) for k2, v in ratios.items()]
    lines += ["", "How each was measured:", ""]
    lines += ["- **%s**: %s" % (r["system"], r["note"]) for r in doc["results"]]
    if meta.get("openssl_speed"):
        lines += ["", "`openssl speed -multi %d` on this machine during the run (mean of %d runs: %s): %s "
                  "signatures/s." % (meta["cores"], len(meta["openssl_speed_runs"]),
                                     "; ".join(json.dumps(r) for r in meta["openssl_speed_runs"]),
                                     ", ".join("%s %s" % kv for kv in meta["openssl_speed"].items()))]
    lines += other_runs(doc, meta)
    # The analysis (where the time goes, what would fix it) is written by hand from
    # the profiles and kept with the scripts; it is appended to every new table.
    notes = os.path.join(HERE, "notes.md")
    if os.path.exists(notes):
        with open(notes) as f:
            lines += ["", f.read().rstrip()]
    with open(os.path.join(outdir, "peers.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        rs = [r for r in doc["results"] if r.get("msgs_per_s")]
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        names = [r["system"].replace(" + ", "\n+ ").replace(" (", "\n(") for r in rs]
        axes[0].barh(names, [r["msgs_per_s"] for r in rs], color="#3b7dd8")
        axes[0].set_xlabel("messages/s (higher is better)")
        axes[0].invert_yaxis()
        axes[1].barh(names, [r["cpu_s_per_1000"] or 0 for r in rs], color="#d8843b")
        axes[1].set_xlabel("CPU seconds per 1,000 messages (lower is better)")
        axes[1].invert_yaxis()
        axes[1].set_yticklabels([])
        for ax, key in ((axes[0], "msgs_per_s"), (axes[1], "cpu_s_per_1000")):
            for i, r in enumerate(rs):
                if r.get(key) is not None:
                    ax.annotate("%g" % r[key], (r[key], i), xytext=(3, 0), textcoords="offset points",
                                va="center", fontsize=8)
            ax.margins(x=0.15)
        fig.suptitle("%d messages x ~%d bytes over %d domains to smtp-sink, %d cores" % (
            meta["messages"], meta["message_bytes"], meta["domains"], meta["cores"]))
        fig.tight_layout()
        fig.savefig(os.path.join(outdir, "peers.png"), dpi=100)
    except ImportError:
        log("matplotlib missing (apt-get install python3-matplotlib): no chart")
    return doc


def before_text(meta):
    before = [name for key, name in (("scale_file", "the queue scale run"), ("micro_file", "the micro-benchmarks"))
              if meta.get(key)]
    return " (after %s)" % " and ".join(before) if before else ""


def other_runs(doc, meta):
    """The queue scale run and the micro-benchmarks of the same bench/run-peers.sh
    invocation (run just before this comparison), as Markdown; their figures go into
    doc as well."""
    lines = []
    if meta.get("scale_file") and os.path.exists(meta["scale_file"]):
        with open(meta["scale_file"]) as f:
            sc = json.load(f)
        doc["scale"] = sc
        met = sc.get("met", {})

        def mark(key):
            return "met" if met.get(key) else "**missed**"
        lines += ["", "## Scale: %s recipients queued (`kurier-queue-scale`, same run)" % format(sc["recipients"], ","),
                  "", "Load average at its start: %s." % sc.get("load_average_at_start"), "",
                  "| figure | value | target | |", "|---|---:|---:|---|",
                  "| intake, recipients/s (wall) | %.0f | >= 200,000 | %s |" % (
                      sc["intake_recipients_per_second"], mark("intake_rate")),
                  "| intake, recipients per CPU second (all threads) | %.0f | | |" % sc["intake_recipients_per_cpu_second"],
                  "| intake seconds (open to synced commit) | %.2f | | |" % sc["intake_seconds"],
                  "| peak RSS MB | %.1f | < 256 | %s |" % (sc["peak_rss_mb"], mark("peak_rss")),
                  "| queue bytes per recipient on disk (template once) | %.1f | < 200 | %s |" % (
                      sc["bytes_per_recipient"], mark("bytes_per_recipient"))]
    if meta.get("micro_file") and os.path.exists(meta["micro_file"]):
        with open(meta["micro_file"]) as f:
            micro = f.read().rstrip().splitlines()
        doc["micro_table"] = os.path.relpath(meta["micro_file"], ROOT)
        # Its title becomes a section of this document.
        lines += [""] + [("#" + ln if ln.startswith("# ") else ln) for ln in micro]
    return lines


def cmake_build_type(build):
    try:
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("CMAKE_BUILD_TYPE:"):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--domains", type=int, default=50)
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--systems", default="ceiling,kurier,rsa,ed25519,openssl,postfix,haraka,postfix-queued",
                    help="in this order; openssl = `openssl speed -multi` for the DKIM target")
    ap.add_argument("--connections", type=int, default=10, help="connections per destination domain (all systems)")
    ap.add_argument("--messages-per-connection", type=int, default=1000)
    ap.add_argument("--ceiling-sessions", type=int, default=2, help="smtp-source sessions per sink")
    ap.add_argument("--submit-sessions", type=int, default=2, help="smtp-source sessions per domain into Postfix/Haraka")
    ap.add_argument("--timeout", type=float, default=600, help="seconds each system may take")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--perf", help="record kurier under `perf record -g` into this directory")
    ap.add_argument("--scale", help="queue_scale.json of this run, added to peers.{json,md}")
    ap.add_argument("--micro", help="micro.md of this run, added to peers.md")
    ap.add_argument("--render", metavar="PEERS_JSON",
                    help="measure nothing: rewrite peers.md and peers.png in --out from this peers.json "
                         "(after editing notes.md)")
    args = ap.parse_args()
    if args.render:
        with open(args.render) as f:
            saved = json.load(f)
        write_outputs(saved["results"], saved["meta"], args.out)
        log("rewrote", os.path.join(args.out, "peers.md"), "peers.png from", args.render)
        return
    if os.geteuid() != 0:
        sys.exit("compare.py: needs root (port 25/53 on loopback, the private Postfix instance)")
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so everything started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("compare.py: terminated"))
    work = tempfile.mkdtemp(prefix="kurier-peers-")
    os.chmod(work, 0o755)  # Postfix's and Haraka's unprivileged users work below it
    procs = Procs()
    systems = args.systems.split(",")
    if args.perf:
        os.makedirs(args.perf, exist_ok=True)  # perf record cannot create it, and kurier would never start
    env = {"procs": procs, "work": work, "domains": args.domains, "build": args.build, "timeout": args.timeout,
           "connections": args.connections, "messages_per_connection": args.messages_per_connection,
           "ceiling_sessions": args.ceiling_sessions, "submit_sessions": args.submit_sessions,
           "peers_dir": os.path.join(ROOT, "bench", ".peers"), "perf": args.perf}
    meta = {"started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "messages": args.messages, "domains": args.domains, "cores": os.cpu_count(),
            "loadavg": open("/proc/loadavg").read().split()[0], "connections_per_domain": args.connections,
            "systems": systems, "build": os.path.relpath(os.path.abspath(args.build), ROOT),
            "build_type": cmake_build_type(args.build), "scale_file": args.scale, "micro_file": args.micro}
    results = []
    try:
        start_dns(procs, args.domains, work)
        env["sinks"] = Sinks(procs, args.domains, work)
        time.sleep(0.5)
        for k in (1, args.domains):
            if not wait_port("%s%d" % (SINK_NET, k), 25, 10):
                raise RuntimeError("smtp-sink on %s%d:25 did not start (see %s)" % (SINK_NET, k, work))
        env["msgfile"] = sample_message(os.path.join(work, "message.eml"))
        meta["message_bytes"] = os.path.getsize(env["msgfile"])
        if "rsa" in systems or "ed25519" in systems:
            keys = os.path.join(work, "keys")
            os.makedirs(keys)
            env["keys"] = {"rsa": os.path.join(keys, "rsa.pem"), "ed25519": os.path.join(keys, "ed25519.pem")}
            subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
                            env["keys"]["rsa"]], check=True, capture_output=True)
            subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", env["keys"]["ed25519"]], check=True,
                           capture_output=True)
        for s in systems:
            if results:
                # Written after every system: a run stopped early keeps what it measured.
                meta["loadavg_end"] = open("/proc/loadavg").read().split()[0]
                write_outputs(results, meta, args.out)
            log("== %s, %d messages" % (s, args.messages))
            if s == "ceiling":
                results.append(run_ceiling(env, args.messages))
            elif s in ("kurier", "rsa", "ed25519", "kurier-events-off"):
                variant = {"kurier": "plain", "kurier-events-off": "events-off"}.get(s, s)
                results.append(run_kurier(env, args.messages, variant))
            elif s == "postfix":
                results.append(run_postfix(env, args.messages))
            elif s == "postfix-queued":
                results.append(run_postfix(env, args.messages, queue_first=True))
            elif s == "haraka":
                results.append(run_haraka(env, args.messages))
            elif s == "openssl":
                meta.setdefault("openssl_speed_runs", []).append(openssl_speed())
                runs = meta["openssl_speed_runs"]
                meta["openssl_speed"] = {alg: round(statistics.mean(r[alg] for r in runs if alg in r), 1)
                                         for alg in ("rsa2048", "ed25519") if any(alg in r for r in runs)}
                log("openssl speed:", runs[-1], "mean of", len(runs), "runs:", meta["openssl_speed"])
            else:
                log("unknown system", s)
    finally:
        procs.stop_all()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log("work directory kept:", work)
    meta["loadavg_end"] = open("/proc/loadavg").read().split()[0]
    doc = write_outputs(results, meta, args.out)
    log("ratios:", json.dumps(doc["ratios"]))
    log("wrote", os.path.join(args.out, "peers.json"), "peers.md", "peers.png")


if __name__ == "__main__":
    main()
