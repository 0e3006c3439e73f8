# cython: language_level=3
"""The kernels' OpenMP runtime: one process-wide thread count, team sizes, load, fork safety.

* **One setting for the process.** OpenMP's thread count (nthreads-var) belongs to each thread:
  ``omp_set_num_threads`` in one Python thread leaves every other thread at the default. So the
  count lives here, in one C variable, and every parallel region of the kernels passes
  ``num_threads=team(...)`` explicitly (cimported from ``_omp.pxd``).
* **Plans vs teams.** ``get_max_threads`` is the thread count a kernel call *plans* for (how many
  partitions, partial buffers and row blocks it makes, which kernel); ``team`` is how many
  threads run those partitions. Results depend only on the plan, so a smaller team never changes
  the bits. The plan is the thread count, or in deterministic mode a fixed partition count
  whatever the thread setting; never the load, except that outside deterministic mode the conv
  planner plans its passes for the load's cap (``cap_to_load``). A calling thread may cap its
  own calls (``set_thread_cap``): the conv planner runs a pass serially where it measured that
  faster, or on the threads the load leaves.
* **Load.** Every 100 ms (FC_LOAD_WINDOW_NS) the thread starting a region reads the busy time
  of this process's CPUs (``/proc/stat``) minus this process's own CPU time; CPUs that other
  processes keep busy are not given to teams (a region whose second thread shares a core with
  another process waits for it at every barrier). ``set_adaptive(False)`` or the environment
  variable ``FASTCONV_ADAPTIVE_THREADS=0`` turns this off.
* **Fork.** libgomp's thread pool does not survive ``fork``: the child inherits a pool whose
  threads do not exist and deadlocks in its first parallel region. A ``pthread_atfork`` handler
  releases the forking thread's pool first (``omp_pause_resource_all``), so parent and child
  both start a fresh one on their next region. Where that is unavailable, the child's forking
  thread runs every region with one thread (threads the child starts later are unaffected).

See docs/design.md §2.
"""

cdef extern from *:
    """
    #include <pthread.h>
    #include <sched.h>
    #include <stdio.h>
    #include <string.h>
    #include <time.h>
    #include <unistd.h>
    #ifdef _OPENMP
    #include <omp.h>
    #endif

    static int fc_threads_var = 1;      /* the process-wide thread count (set_num_threads) */
    static int fc_partitions_var = 0;   /* deterministic mode: the fixed plan, 0 = off */
    static int fc_adaptive_var = 1;     /* cap teams by the CPUs other processes leave free */
    static int fc_load_cap = 1 << 30;   /* that cap, refreshed every FC_LOAD_WINDOW_NS */
    static __thread int fc_thread_cap = 1 << 30;   /* this thread's calls: at most this many */

    /* ---- fork: release the forking thread's libgomp pool, or run serially in the child */
    static __thread int fc_pool_lost = 0;   /* this thread's pool died in a fork: one thread */
    static int fc_release_failed = 0;
    static int fc_release_enabled = 1;       /* tests turn the release off to reach the fallback */

    #if defined(_OPENMP) && (defined(__clang__) || !defined(__GNUC__) || __GNUC__ >= 9)
    #define FC_CAN_PAUSE 1
    #endif

    static void fc_before_fork(void) {
    #ifdef FC_CAN_PAUSE
        fc_release_failed = !fc_release_enabled || omp_pause_resource_all(omp_pause_soft) != 0;
    #elif defined(_OPENMP)
        fc_release_failed = 1;
    #endif
    }
    static void fc_after_fork_child(void) {
        if (fc_release_failed) fc_pool_lost = 1;
    }
    static int fc_register_fork_handlers(void) {
        return pthread_atfork(fc_before_fork, NULL, fc_after_fork_child);
    }

    /* ---- load: CPUs of this process's affinity mask that other processes keep busy */
    #define FC_LOAD_WINDOW_NS 100000000LL
    static long long fc_load_wall = 0, fc_load_busy = -1, fc_load_own = 0;
    static int fc_load_lock = 0;
    static double fc_load_other = 0.0;   /* other processes' busy CPUs in the last window */

    static long long fc_clock_ns(clockid_t clock) {
        struct timespec t;
        clock_gettime(clock, &t);
        return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
    }

    /* Busy clock ticks (user, nice, system, irq, softirq) of the CPUs this process may use, and
       how many CPUs that is; -1 when /proc/stat cannot be read. */
    static long long fc_busy_ticks(int* ncpus) {
        char line[512];
        cpu_set_t mask;
        long long total = 0;
        int have_mask = sched_getaffinity(0, sizeof(mask), &mask) == 0;
        FILE* f = fopen("/proc/stat", "r");
        *ncpus = 0;
        if (f == NULL) return -1;
        while (fgets(line, sizeof(line), f) != NULL) {
            int cpu;
            unsigned long long user, nice, sys, idle, iowait, irq, softirq;
            if (strncmp(line, "cpu", 3) != 0) break;
            if (line[3] < '0' || line[3] > '9') continue;
            if (sscanf(line + 3, "%d %llu %llu %llu %llu %llu %llu %llu", &cpu, &user, &nice, &sys,
                       &idle, &iowait, &irq, &softirq) != 8)
                continue;
            if (have_mask && (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &mask))) continue;
            total += (long long)(user + nice + sys + irq + softirq);
            *ncpus += 1;
        }
        fclose(f);
        return *ncpus > 0 ? total : -1;
    }

    /* One sample: the other processes' busy CPUs since the previous sample give the cap. */
    static void fc_sample_load(long long now) {
        int ncpus, cap;
        long long busy = fc_busy_ticks(&ncpus), own = fc_clock_ns(CLOCK_PROCESS_CPUTIME_ID);
        if (busy >= 0 && fc_load_busy >= 0 && now > fc_load_wall) {
            double wall = (now - fc_load_wall) * 1e-9;
            double other = (busy - fc_load_busy) / (double)sysconf(_SC_CLK_TCK)
                           - (own - fc_load_own) * 1e-9;
            fc_load_other = other > 0 ? other / wall : 0.0;
            cap = ncpus - (int)(fc_load_other + 0.5);
            fc_load_cap = cap < 1 ? 1 : cap;
        }
        fc_load_wall = now;
        fc_load_busy = busy;
        fc_load_own = own;
    }

    static int fc_current_load_cap(void) {
        long long now;
        if (!fc_adaptive_var) return 1 << 30;
        now = fc_clock_ns(CLOCK_MONOTONIC);
        if (now - __atomic_load_n(&fc_load_wall, __ATOMIC_RELAXED) >= FC_LOAD_WINDOW_NS
                && !__atomic_exchange_n(&fc_load_lock, 1, __ATOMIC_ACQUIRE)) {
            if (now - fc_load_wall >= FC_LOAD_WINDOW_NS) fc_sample_load(now);
            __atomic_store_n(&fc_load_lock, 0, __ATOMIC_RELEASE);
        }
        return __atomic_load_n(&fc_load_cap, __ATOMIC_RELAXED);
    }

    /* ---- team sizes */
    static int fc_team(int requested) {
        int n = requested < fc_threads_var ? requested : fc_threads_var;
        if (n > fc_thread_cap) n = fc_thread_cap;
        if (n > 1) {
            int cap = fc_current_load_cap();
            if (n > cap) n = cap;
        }
        if (n < 1 || fc_pool_lost) n = 1;
        return n;
    }

    static int fc_team_size_probe(int requested) {
        int seen = 1;
    #ifdef _OPENMP
        #pragma omp parallel num_threads(fc_team(requested))
        {
            #pragma omp master
            seen = omp_get_num_threads();
        }
    #endif
        return seen;
    }

    static int fc_get_thread_cap(void) { return fc_thread_cap; }
    static void fc_set_thread_cap(int cap) { fc_thread_cap = cap; }

    static int fc_openmp_enabled(void) {
    #ifdef _OPENMP
        return 1;
    #else
        return 0;
    #endif
    }
    static int fc_default_threads(void) {
    #ifdef _OPENMP
        return omp_get_max_threads();   /* OMP_NUM_THREADS, else the CPUs this process may use */
    #else
        return 1;
    #endif
    }
    static int fc_can_release_pool(void) {
    #ifdef FC_CAN_PAUSE
        return 1;
    #else
        return 0;
    #endif
    }
    """
    int fc_threads_var, fc_partitions_var, fc_adaptive_var, fc_release_enabled
    double fc_load_other
    int fc_team(int requested) nogil
    int fc_current_load_cap() nogil
    int fc_team_size_probe(int requested) nogil
    int fc_get_thread_cap() nogil
    void fc_set_thread_cap(int cap) nogil
    int fc_openmp_enabled()
    int fc_default_threads()
    int fc_register_fork_handlers()
    int fc_can_release_pool()
    void fc_sample_load(long long now) nogil
    long long fc_clock_ns(int clock) nogil
    int CLOCK_MONOTONIC


cdef int team(int requested) noexcept nogil:
    """Threads for a region planned for ``requested`` partitions: at most the process-wide count
    and the CPUs other processes leave free, at least 1."""
    return fc_team(requested)


cdef int team_for_work(double work, double min_work_per_thread) noexcept nogil:
    """Team for a region of ``work`` units (elements, flops) that pays for a thread only with at
    least ``min_work_per_thread`` of them: small regions run on one thread (no fork/join)."""
    cdef double fit = work / min_work_per_thread if min_work_per_thread > 0 else fc_threads_var
    return fc_team(<int>fit if fit < fc_threads_var else fc_threads_var)


cdef Py_ssize_t part_begin(Py_ssize_t p, Py_ssize_t parts, Py_ssize_t n) noexcept nogil:
    """First of the items of partition ``p`` when ``n`` items are cut into ``parts`` contiguous
    partitions (partition p is [part_begin(p), part_begin(p + 1))). The partition, not the
    thread running it, decides which items a partial sum holds, so sums are the same whatever
    the team."""
    return p * n // parts


cdef void _initialize():
    """Default thread count (OMP_NUM_THREADS, else the usable CPUs), fork handlers, load governor
    (FASTCONV_ADAPTIVE_THREADS=0 turns it off) and its first sample."""
    global fc_threads_var, fc_adaptive_var
    import os
    if fc_openmp_enabled():
        fc_register_fork_handlers()
    fc_threads_var = max(fc_default_threads(), 1)
    fc_adaptive_var = os.environ.get("FASTCONV_ADAPTIVE_THREADS", "1").strip() != "0"
    fc_sample_load(fc_clock_ns(CLOCK_MONOTONIC))


_initialize()


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(fc_openmp_enabled())


def get_num_threads():
    """The process-wide thread count: the most threads any kernel region uses (1 without OpenMP)."""
    return fc_threads_var if fc_openmp_enabled() else 1


def set_num_threads(int n):
    """Set the process-wide thread count of every kernel region, whichever thread starts it."""
    global fc_threads_var
    if n < 1:
        raise ValueError(f"set_num_threads: expected a positive int, got {n}")
    fc_threads_var = n


def get_max_threads():
    """Threads a kernel call plans for (partitions of its work, partial buffers, which kernel):
    the deterministic partition count when that mode is on, else the process-wide thread count.
    Never the load: results depend on the thread setting only (a busy machine runs the same
    plans with smaller teams), so a run and its resumed continuation compute the same bits."""
    if fc_partitions_var > 0:
        return fc_partitions_var
    if not fc_openmp_enabled():
        return 1
    return min(fc_threads_var, fc_get_thread_cap())


cdef inline int _as_set_cap(int raw) noexcept:
    """A thread cap as ``set_thread_cap`` takes it: 0 for none (stored as 2**30)."""
    return 0 if raw >= 1 << 30 else raw


def set_thread_cap(int cap):
    """Cap the calling thread's kernel calls at ``cap`` threads, as if the process-wide count
    were at most ``cap`` for them (0: no cap); returns the previous cap (0 when none). The conv
    planner runs a pass serially this way where its measurements found one thread faster: a
    region too small to pay for the other thread's wake-up and barrier. In deterministic mode
    the plan stays the fixed partition count (only the team shrinks, so the bits do not change)."""
    if cap < 0:
        raise ValueError(f"set_thread_cap: expected a cap >= 0, got {cap}")
    previous = fc_get_thread_cap()
    fc_set_thread_cap(cap if cap > 0 else 1 << 30)
    return _as_set_cap(previous)


def set_deterministic_partitions(int parts):
    """Plan every kernel call for ``parts`` partitions whatever the thread count (0: off, plans
    follow the thread count). Returns the previous value."""
    global fc_partitions_var
    if parts < 0:
        raise ValueError(f"set_deterministic_partitions: expected parts ≥ 0, got {parts}")
    previous = fc_partitions_var
    fc_partitions_var = parts
    return previous


def deterministic_partitions():
    """The fixed partition count of deterministic mode (0: off)."""
    return fc_partitions_var


def set_adaptive(bint on):
    """Cap teams by the CPUs other processes leave free (on by default); returns the previous
    setting. Off, every region gets the full process-wide count."""
    global fc_adaptive_var
    previous = bool(fc_adaptive_var)
    fc_adaptive_var = on
    return previous


def load_cap():
    """(team cap, other processes' busy CPUs) from the latest load sample (refreshed when due)."""
    cdef int cap
    with nogil:
        cap = fc_current_load_cap()
    return cap, fc_load_other


def cap_to_load():
    """Cap the calling thread's calls at the threads the load leaves when that is fewer than its
    planned count (outside deterministic mode); returns the previous cap for ``set_thread_cap``
    (0: none), or -1 when nothing changed. One call: the conv planner asks before every pass."""
    cdef int load, planned, previous = fc_get_thread_cap()
    if fc_partitions_var > 0 or not fc_openmp_enabled():
        return -1
    planned = min(fc_threads_var, previous)
    if planned <= 1:
        return -1
    with nogil:
        load = fc_current_load_cap()
    if load >= planned:
        return -1
    fc_set_thread_cap(load)
    return _as_set_cap(previous)


def team_size(int requested=0):
    """Threads an OpenMP region of the kernels runs with when planned for ``requested``
    partitions (0: the process-wide count), measured inside a real region. For tests."""
    cdef int want = requested if requested > 0 else fc_threads_var
    cdef int seen
    with nogil:
        seen = fc_team_size_probe(want)
    return seen


def fork_release_supported():
    """Whether fork handlers can release the OpenMP pool (else forked children run serially)."""
    return bool(fc_can_release_pool())


def set_fork_release(bint on):
    """For tests: with False, ``fork`` keeps the OpenMP pool, as where it cannot be released, so
    the child's forking thread runs its regions on one thread. Returns the previous setting."""
    global fc_release_enabled
    previous = bool(fc_release_enabled)
    fc_release_enabled = on
    return previous
