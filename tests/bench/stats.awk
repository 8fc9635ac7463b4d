# stats.awk - the benchmark's statistics (tests/bench.sh). Deterministic:
# the bootstrap draws from a fixed-seed generator, so the same data always
# give the same figures.
#
#   awk -f stats.awk -v what=pairs [-v boot=2000]
#       "A B" a line, each line one pair measured back to back ->
#       "N MEDIAN_A MEDIAN_B RATIO Q1 Q3 LO HI": RATIO = MEDIAN_A / MEDIAN_B;
#       Q1..Q3 the interquartile range of the per-pair ratios A/B (how much
#       one pair says); LO..HI the bootstrap 95% interval of RATIO (pairs
#       drawn with replacement, `boot` times: how sure the ratio is)
#   awk -f stats.awk -v what=groups
#       curve.tsv rows (header skipped) -> per SIZE MODE IMPL, in the order
#       first seen: "SIZE MODE IMPL N" and the median of each further
#       column ("-" where a column has no number)

function sort_num(v, n,    gap, i, j, t) {   # shell sort, ascending, v[1..n]
    for (gap = int(n / 2); gap > 0; gap = int(gap / 2))
        for (i = gap + 1; i <= n; i++) {
            t = v[i]
            for (j = i; j > gap && v[j - gap] > t; j -= gap)
                v[j] = v[j - gap]
            v[j] = t
        }
}

function median_sorted(v, n) {
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}

function quantile_sorted(v, n, p,    h, lo) {   # linear interpolation (R's type 7)
    h = (n - 1) * p + 1
    lo = int(h)
    return lo >= n ? v[n] : v[lo] + (h - lo) * (v[lo + 1] - v[lo])
}

function rnd() {   # Park-Miller: exact in awk's doubles, the same everywhere
    seed = (seed * 16807) % 2147483647
    return seed / 2147483647
}

# ranks x[1..n] into r[] (r[i]: position of x[i] in sorted order) and the
# sorted values into s[].
function rank(x, n, r, s,    idx, i, j, t, gap) {
    for (i = 1; i <= n; i++) idx[i] = i
    for (gap = int(n / 2); gap > 0; gap = int(gap / 2))
        for (i = gap + 1; i <= n; i++) {
            t = idx[i]
            for (j = i; j > gap && x[idx[j - gap]] > x[t]; j -= gap)
                idx[j] = idx[j - gap]
            idx[j] = t
        }
    for (i = 1; i <= n; i++) { r[idx[i]] = i; s[i] = x[idx[i]] }
}

# The k-th smallest of a resample given as counts per sorted position.
function kth(cnt, s, n, k,    i, c) {
    for (i = 1; i <= n; i++) {
        c += cnt[i]
        if (c >= k) return s[i]
    }
    return s[n]
}

function median_counts(cnt, s, n) {
    return n % 2 ? kth(cnt, s, n, (n + 1) / 2) : (kth(cnt, s, n, n / 2) + kth(cnt, s, n, n / 2 + 1)) / 2
}

function pairs(    i, k, ra, rb, sa, sb, ca, cb, rat, q, bs, ma, mb) {
    rank(a, n, ra, sa)
    rank(b, n, rb, sb)
    ma = median_sorted(sa, n)
    mb = median_sorted(sb, n)
    for (i = 1; i <= n; i++) q[i] = a[i] / b[i]
    sort_num(q, n)
    seed = 20261130
    for (k = 1; k <= boot; k++) {
        split("", ca); split("", cb)
        for (i = 1; i <= n; i++) {
            rat = int(rnd() * n) + 1
            ca[ra[rat]]++
            cb[rb[rat]]++
        }
        bs[k] = median_counts(ca, sa, n) / median_counts(cb, sb, n)
    }
    sort_num(bs, boot)
    printf "%d %.6f %.6f %.6f %.6f %.6f %.6f %.6f\n", n, ma, mb, ma / mb,
        quantile_sorted(q, n, 0.25), quantile_sorted(q, n, 0.75),
        quantile_sorted(bs, boot, 0.025), quantile_sorted(bs, boot, 0.975)
}

function groups(    g, c, i, m, v, line) {
    for (g = 1; g <= ng; g++) {
        line = key[g] "\t" cnt[g]
        for (c = 5; c <= ncol; c++) {
            m = 0
            split("", v)
            for (i = 1; i <= cnt[g]; i++)
                if (val[g, i, c] != "-" && val[g, i, c] != "") v[++m] = val[g, i, c] + 0
            if (m) { sort_num(v, m); line = line "\t" median_sorted(v, m) }
            else line = line "\t-"
        }
        print line
    }
}

BEGIN { if (boot == "") boot = 2000; FS = what == "groups" ? "\t" : " " }

what == "pairs" && NF { n++; a[n] = $1 + 0; b[n] = $2 + 0 }
what == "groups" && NR > 1 && NF {
    k = $1 "\t" $2 "\t" $3
    if (!(k in gi)) { gi[k] = ++ng; key[ng] = k }
    g = gi[k]
    cnt[g]++
    if (NF > ncol) ncol = NF
    for (c = 5; c <= NF; c++) val[g, cnt[g], c] = $c
}

END {
    if (what == "pairs") { if (!n) exit 1; pairs() }
    else if (what == "groups") groups()
    else { print "stats.awk: what=pairs|groups" > "/dev/stderr"; exit 2 }
}
