/* osdi_bench: time a native OSDI library evaluating N instances, single thread.
 *
 * Part of va2jax's model benchmark (benchmarks/model_bench.py compiles this file with gcc at
 * benchmark time). It is the native side of the "va2jax vs OSDI" throughput ratio, so it does
 * exactly what a simulator's device loop does per instance and nothing else:
 *
 *     eval() + load_residual_resist() + load_residual_react()
 *            + write_jacobian_array_resist() + write_jacobian_array_react()
 *
 * over all N instances, repeated, timed with clock_gettime(CLOCK_MONOTONIC).
 *
 * Usage:
 *   osdi_bench LIB.osdi MODULE PARAMS.txt VOLTS.bin N [--reps R] [--min-time S]
 *              [--temp K] [--dump OUT.bin]
 *
 * PARAMS.txt, one entry a line:  `name value` (a model or instance parameter, routed by its
 * kind; integers are parsed for int parameters), `@sim name value` (a real simulator parameter),
 * `@simstr name value` (a string simulator parameter; value may be empty).
 * VOLTS.bin: N x num_nodes float64, row-major, descriptor node order (the same voltages the JAX
 * side evaluates). --dump writes, after one untimed pass, per instance: resistive residual (n),
 * reactive residual (n), dense resistive Jacobian (n*n), dense reactive Jacobian (n*n), with
 * collapsed nodes mapped to their representative (the layout of va2jax's EvalOutput).
 * Output: one JSON line on stdout.
 *
 * The OSDI 0.5 structures below are declared from the published OSDI header layout (LP64).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- OSDI 0.5 (subset of constants, full struct layouts) ---------------------------------- */
#define K_PARA_TY_MASK 3u
#define K_PARA_TY_REAL 0u
#define K_PARA_TY_INT 1u
#define K_PARA_TY_STR 2u
#define K_PARA_KIND_MASK (3u << 30)
#define K_PARA_KIND_MODEL (0u << 30)
#define K_PARA_KIND_INST (1u << 30)
#define K_ACCESS_SET 1u
#define K_ACCESS_INSTANCE 4u
#define K_JAC_RESIST 4u
#define K_JAC_REACT 8u
#define K_CALC_RESIST_RESIDUAL 1u
#define K_CALC_REACT_RESIDUAL 2u
#define K_CALC_RESIST_JACOBIAN 4u
#define K_CALC_REACT_JACOBIAN 8u
#define K_ANALYSIS_DC 2048u
#define K_RET_FATAL 2u

typedef struct { char **names; double *vals; char **names_str; char **vals_str; } sim_paras_t;
typedef struct {
    sim_paras_t paras;
    double abstime;
    double *prev_solve, *prev_state, *next_state;
    uint32_t flags;
} sim_info_t;
typedef struct { uint32_t code; uint32_t parameter_id; } init_error_t;
typedef struct { uint32_t flags; uint32_t num_errors; init_error_t *errors; } init_info_t;
typedef struct { uint32_t node_1, node_2; } node_pair_t;
typedef struct { node_pair_t nodes; uint32_t react_ptr_off; uint32_t flags; } jac_entry_t;
typedef struct {
    char *name, *units, *residual_units;
    uint32_t resist_residual_off, react_residual_off, resist_limit_rhs_off, react_limit_rhs_off;
    bool is_flow;
} node_t;
typedef struct {
    char **name;
    uint32_t num_alias;
    char *description, *units;
    uint32_t flags, len;
} param_opvar_t;
typedef struct { char *name; node_pair_t nodes; } noise_source_t;
typedef struct { uint32_t ref_type, index; } nature_ref_t;
typedef struct { char *name; uint32_t num_args; void *func_ptr; } lim_function_t;

typedef struct {
    char *name;
    uint32_t num_nodes, num_terminals;
    node_t *nodes;
    uint32_t num_jacobian_entries;
    jac_entry_t *jacobian_entries;
    uint32_t num_collapsible;
    node_pair_t *collapsible;
    uint32_t collapsed_offset;
    noise_source_t *noise_sources;
    uint32_t num_noise_src, num_params, num_instance_params, num_opvars;
    param_opvar_t *param_opvar;
    uint32_t node_mapping_offset, jacobian_ptr_resist_offset, num_states, state_idx_off,
        bound_step_offset, instance_size, model_size;
    void *(*access)(void *inst, void *model, uint32_t id, uint32_t flags);
    void (*setup_model)(void *handle, void *model, sim_paras_t *sp, init_info_t *res);
    void (*setup_instance)(void *handle, void *inst, void *model, double temperature,
                           uint32_t num_terminals, sim_paras_t *sp, init_info_t *res);
    uint32_t (*eval)(void *handle, void *inst, void *model, sim_info_t *info);
    void *load_noise;
    void (*load_residual_resist)(void *inst, void *model, double *dst);
    void (*load_residual_react)(void *inst, void *model, double *dst);
    void (*load_limit_rhs_resist)(void *inst, void *model, double *dst);
    void (*load_limit_rhs_react)(void *inst, void *model, double *dst);
    void *load_spice_rhs_dc, *load_spice_rhs_tran;
    void (*load_jacobian_resist)(void *inst, void *model);
    void (*load_jacobian_react)(void *inst, void *model, double alpha);
    void (*load_jacobian_tran)(void *inst, void *model, double alpha);
    /* 0.4 */
    uint32_t (*given_flag_model)(void *model, uint32_t id);
    uint32_t (*given_flag_instance)(void *inst, uint32_t id);
    uint32_t num_resistive_jacobian_entries, num_reactive_jacobian_entries;
    void (*write_jacobian_array_resist)(void *inst, void *model, double *dst);
    void (*write_jacobian_array_react)(void *inst, void *model, double *dst);
    uint32_t num_inputs;
    node_pair_t *inputs;
    void *load_jacobian_with_offset_resist, *load_jacobian_with_offset_react;
    nature_ref_t *unknown_nature, *residual_nature;
    /* 0.5 */
    uint32_t *noise_source_type;
    void *load_noise_params;
    uint32_t module_flags, absdelay_count;
    void *absdelays;
} descriptor_t;

/* ---- helpers ------------------------------------------------------------------------------- */
static void die(const char *fmt, const char *a) {
    fprintf(stderr, "osdi_bench: ");
    fprintf(stderr, fmt, a);
    fprintf(stderr, "\n");
    exit(2);
}

static void host_log(void *handle, char *msg, uint32_t lvl) {
    (void)handle;
    if ((lvl & 7u) >= 4u && msg) fprintf(stderr, "osdi_bench: model says: %s\n", msg);
    free(msg);
}

/* $limit callbacks are only called with ENABLE_LIM, which this benchmark never sets; the table
 * still gets a harmless function so that no NULL pointer is left behind. */
static double lim_passthrough(double vnew) { return vnew; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static const param_opvar_t *find_param(const descriptor_t *d, const char *name, uint32_t *id) {
    uint32_t total = d->num_params;  /* opvars follow the parameters; never set those */
    for (uint32_t i = 0; i < total; i++) {
        const param_opvar_t *p = &d->param_opvar[i];
        for (uint32_t k = 0; k <= p->num_alias; k++)
            if (p->name[k] && strcasecmp(p->name[k], name) == 0) { *id = i; return p; }
    }
    return NULL;
}

static void check_init(const init_info_t *info, const char *what) {
    if (info->num_errors || (info->flags & K_RET_FATAL)) {
        fprintf(stderr, "osdi_bench: %s reported %u error(s), flags %u\n", what, info->num_errors,
                info->flags);
        exit(3);
    }
    free(info->errors);
}

typedef struct { char name[128]; char value[256]; int is_sim, is_simstr; } entry_t;

static void set_param(const descriptor_t *d, void *inst, void *model, uint32_t id,
                      const param_opvar_t *p, const char *value, uint32_t flags) {
    void *ptr = d->access(inst, model, id, flags | K_ACCESS_SET);
    if (!ptr) die("cannot set parameter %s", p->name[0]);
    switch (p->flags & K_PARA_TY_MASK) {
    case K_PARA_TY_REAL: *(double *)ptr = strtod(value, NULL); break;
    case K_PARA_TY_INT: *(int32_t *)ptr = (int32_t)strtol(value, NULL, 10); break;
    default: *(char **)ptr = strdup(value); break;
    }
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s LIB.osdi MODULE PARAMS.txt VOLTS.bin N [--reps R] "
                        "[--min-time S] [--temp K] [--dump OUT.bin]\n", argv[0]);
        return 2;
    }
    const char *lib_path = argv[1], *module = argv[2], *params_path = argv[3], *volts_path = argv[4];
    long n_inst = strtol(argv[5], NULL, 10);
    int reps = 7;
    double min_time = 0.2, temperature = 300.15;
    const char *dump_path = NULL;
    for (int a = 6; a + 1 < argc; a += 2) {
        if (!strcmp(argv[a], "--reps")) reps = atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--min-time")) min_time = strtod(argv[a + 1], NULL);
        else if (!strcmp(argv[a], "--temp")) temperature = strtod(argv[a + 1], NULL);
        else if (!strcmp(argv[a], "--dump")) dump_path = argv[a + 1];
        else die("unknown option %s", argv[a]);
    }
    if (n_inst < 1 || reps < 1) die("%s", "N and --reps must be positive");

    /* -- library and descriptor -- */
    void *lib = dlopen(lib_path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) die("dlopen failed: %s", dlerror());
    uint32_t *vmaj = dlsym(lib, "OSDI_VERSION_MAJOR"), *vmin = dlsym(lib, "OSDI_VERSION_MINOR");
    uint32_t *ndesc = dlsym(lib, "OSDI_NUM_DESCRIPTORS"), *dsize = dlsym(lib, "OSDI_DESCRIPTOR_SIZE");
    char *descs = dlsym(lib, "OSDI_DESCRIPTORS");
    if (!vmaj || !vmin || !ndesc || !descs || !dsize) die("%s: not an OSDI 0.4+ library", lib_path);
    if (*vmaj != 0 || *vmin != 5 || *dsize != sizeof(descriptor_t)) die("%s: need OSDI 0.5", lib_path);
    void (**log_slot)(void *, char *, uint32_t) = dlsym(lib, "osdi_log");
    if (log_slot) *log_slot = host_log;
    uint32_t *lim_len = dlsym(lib, "OSDI_LIM_TABLE_LEN");
    lim_function_t *lim = dlsym(lib, "OSDI_LIM_TABLE");
    if (lim_len && lim)
        for (uint32_t i = 0; i < *lim_len; i++) lim[i].func_ptr = (void *)lim_passthrough;
    const descriptor_t *d = NULL;
    for (uint32_t i = 0; i < *ndesc; i++) {
        const descriptor_t *c = (const descriptor_t *)(descs + (size_t)i * *dsize);
        if (strcasecmp(c->name, module) == 0) d = c;
    }
    if (!d) die("no module %s in the library", module);
    const uint32_t n = d->num_nodes, ns = d->num_states;
    const uint32_t nr = d->num_resistive_jacobian_entries, nq = d->num_reactive_jacobian_entries;

    /* -- parameters and simulator parameters -- */
    entry_t *ent = calloc(4096, sizeof *ent);
    int nent = 0;
    FILE *fp = fopen(params_path, "r");
    if (!fp) die("cannot open %s", params_path);
    char line[512];
    while (fgets(line, sizeof line, fp) && nent < 4096) {
        line[strcspn(line, "\r\n")] = 0;
        entry_t *e = &ent[nent];
        char tag[16] = "";
        if (!strncmp(line, "@simstr ", 8)) {
            e->is_simstr = 1;
            if (sscanf(line, "%15s %127s %255[^\n]", tag, e->name, e->value) < 2) continue;
        } else if (!strncmp(line, "@sim ", 5)) {
            e->is_sim = 1;
            if (sscanf(line, "%15s %127s %255s", tag, e->name, e->value) != 3) continue;
        } else if (sscanf(line, "%127s %255s", e->name, e->value) != 2) {
            continue;
        }
        nent++;
    }
    fclose(fp);
    int nsim = 0, nstr = 0;
    for (int i = 0; i < nent; i++) { nsim += ent[i].is_sim; nstr += ent[i].is_simstr; }
    char **sim_names = calloc(nsim + 1, sizeof(char *)), **str_names = calloc(nstr + 1, sizeof(char *));
    char **str_vals = calloc(nstr + 1, sizeof(char *));
    double *sim_vals = calloc(nsim + 1, sizeof(double));
    nsim = nstr = 0;
    for (int i = 0; i < nent; i++) {
        if (ent[i].is_sim) { sim_names[nsim] = ent[i].name; sim_vals[nsim++] = strtod(ent[i].value, NULL); }
        if (ent[i].is_simstr) { str_names[nstr] = ent[i].name; str_vals[nstr++] = ent[i].value; }
    }
    sim_paras_t sp = {sim_names, sim_vals, str_names, str_vals};

    /* -- model -- */
    void *model = calloc(1, d->model_size ? d->model_size : 1);
    for (int i = 0; i < nent; i++) {
        if (ent[i].is_sim || ent[i].is_simstr) continue;
        uint32_t id;
        const param_opvar_t *p = find_param(d, ent[i].name, &id);
        if (!p) die("unknown parameter %s", ent[i].name);
        if ((p->flags & K_PARA_KIND_MASK) == K_PARA_KIND_MODEL)
            set_param(d, NULL, model, id, p, ent[i].value, 0);
    }
    init_info_t info = {0, 0, NULL};
    d->setup_model((void *)module, model, &sp, &info);
    check_init(&info, "setup_model");

    /* -- instances: setup, node collapsing, node mapping, state indices -- */
    char *inst_mem = calloc((size_t)n_inst, d->instance_size);
    if (!inst_mem) die("%s", "out of memory for instances");
    uint32_t *parent = malloc((n + 1) * sizeof(uint32_t));
    for (long k = 0; k < n_inst; k++) {
        void *inst = inst_mem + (size_t)k * d->instance_size;
        for (int i = 0; i < nent; i++) {
            if (ent[i].is_sim || ent[i].is_simstr) continue;
            uint32_t id;
            const param_opvar_t *p = find_param(d, ent[i].name, &id);
            if ((p->flags & K_PARA_KIND_MASK) == K_PARA_KIND_INST)
                set_param(d, inst, model, id, p, ent[i].value, K_ACCESS_INSTANCE);
        }
        init_info_t ii = {0, 0, NULL};
        d->setup_instance((void *)module, inst, model, temperature, d->num_terminals, &sp, &ii);
        check_init(&ii, "setup_instance");
        /* union-find over nodes 0..n (n = ground); a set's root is ground or its lowest node */
        for (uint32_t i = 0; i <= n; i++) parent[i] = i;
        const bool *collapsed = (const bool *)((char *)inst + d->collapsed_offset);
        for (uint32_t c = 0; c < d->num_collapsible; c++) {
            if (!collapsed[c]) continue;
            uint32_t a = d->collapsible[c].node_1, b = d->collapsible[c].node_2;
            if (a > n) a = n;
            if (b > n) b = n;
            while (parent[a] != a) a = parent[a];
            while (parent[b] != b) b = parent[b];
            if (a == b) continue;
            if (a == n || b == n) parent[a == n ? b : a] = n;
            else if (a < b) parent[b] = a;
            else parent[a] = b;
        }
        uint32_t *map = (uint32_t *)((char *)inst + d->node_mapping_offset);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t r = i;
            while (parent[r] != r) r = parent[r];
            map[i] = r;
        }
        uint32_t *sidx = (uint32_t *)((char *)inst + d->state_idx_off);
        for (uint32_t s = 0; s < ns; s++) sidx[s] = s;
    }

    /* -- voltages: N x n from the file, each row padded with a ground slot (index n) -- */
    double *volts = calloc((size_t)n_inst * (n + 1), sizeof(double));
    fp = fopen(volts_path, "rb");
    if (!fp) die("cannot open %s", volts_path);
    for (long k = 0; k < n_inst; k++)
        if (fread(volts + (size_t)k * (n + 1), sizeof(double), n, fp) != n)
            die("%s: too few voltages", volts_path);
    fclose(fp);

    /* -- outputs per instance (what the JAX side returns): residuals and Jacobian arrays -- */
    double *res_r = calloc((size_t)n_inst * (n + 1), sizeof(double));
    double *res_q = calloc((size_t)n_inst * (n + 1), sizeof(double));
    double *jac_r = calloc((size_t)n_inst * (nr ? nr : 1), sizeof(double));
    double *jac_q = calloc((size_t)n_inst * (nq ? nq : 1), sizeof(double));
    double *prev_state = calloc((size_t)n_inst * (ns ? ns : 1), sizeof(double));
    double *next_state = calloc((size_t)n_inst * (ns ? ns : 1), sizeof(double));
    sim_info_t si;
    memset(&si, 0, sizeof si);
    si.paras = sp;
    si.flags = K_CALC_RESIST_RESIDUAL | K_CALC_REACT_RESIDUAL | K_CALC_RESIST_JACOBIAN |
               K_CALC_REACT_JACOBIAN | K_ANALYSIS_DC;
    unsigned fatal = 0;

#define ONE_PASS()                                                                               \
    for (long k = 0; k < n_inst; k++) {                                                          \
        void *inst = inst_mem + (size_t)k * d->instance_size;                                    \
        si.prev_solve = volts + (size_t)k * (n + 1);                                             \
        si.prev_state = prev_state + (size_t)k * ns;                                             \
        si.next_state = next_state + (size_t)k * ns;                                             \
        fatal |= d->eval((void *)module, inst, model, &si) & K_RET_FATAL;                        \
        double *rr = res_r + (size_t)k * (n + 1), *rq = res_q + (size_t)k * (n + 1);             \
        memset(rr, 0, (n + 1) * sizeof(double));                                                 \
        memset(rq, 0, (n + 1) * sizeof(double));                                                 \
        d->load_residual_resist(inst, model, rr);                                                \
        d->load_residual_react(inst, model, rq);                                                 \
        d->write_jacobian_array_resist(inst, model, jac_r + (size_t)k * nr);                     \
        d->write_jacobian_array_react(inst, model, jac_q + (size_t)k * nq);                      \
    }

    /* warm-up pass, also the one whose results --dump writes */
    double t0 = now_s();
    ONE_PASS();
    double first_pass = now_s() - t0;
    if (dump_path) {
        FILE *out = fopen(dump_path, "wb");
        if (!out) die("cannot write %s", dump_path);
        double *dense = calloc((size_t)n * n, sizeof(double));
        for (long k = 0; k < n_inst; k++) {
            const uint32_t *map = (const uint32_t *)(inst_mem + (size_t)k * d->instance_size +
                                                      d->node_mapping_offset);
            fwrite(res_r + (size_t)k * (n + 1), sizeof(double), n, out);
            fwrite(res_q + (size_t)k * (n + 1), sizeof(double), n, out);
            for (int react = 0; react < 2; react++) {
                memset(dense, 0, (size_t)n * n * sizeof(double));
                const double *arr = react ? jac_q + (size_t)k * nq : jac_r + (size_t)k * nr;
                uint32_t want = react ? K_JAC_REACT : K_JAC_RESIST, pos = 0;
                for (uint32_t e = 0; e < d->num_jacobian_entries; e++) {
                    const jac_entry_t *je = &d->jacobian_entries[e];
                    if (!(je->flags & want)) continue;
                    uint32_t r = map[je->nodes.node_1], c = map[je->nodes.node_2];
                    if (r < n && c < n) dense[(size_t)r * n + c] += arr[pos];
                    pos++;
                }
                fwrite(dense, sizeof(double), (size_t)n * n, out);
            }
        }
        fclose(out);
        free(dense);
    }

    /* calibrate: enough passes per sample to run >= min_time */
    long passes = 1;
    if (first_pass > 0 && first_pass < min_time) passes = (long)ceil(min_time / first_pass);
    t0 = now_s();
    for (long p = 0; p < passes; p++) { ONE_PASS(); }
    double t_cal = now_s() - t0;
    if (t_cal > 0 && t_cal < min_time) passes = (long)ceil(passes * min_time / t_cal);
    double *per_eval = malloc(reps * sizeof(double));
    for (int r = 0; r < reps; r++) {
        t0 = now_s();
        for (long p = 0; p < passes; p++) { ONE_PASS(); }
        per_eval[r] = (now_s() - t0) / ((double)passes * (double)n_inst);
    }
    qsort(per_eval, reps, sizeof(double), cmp_dbl);
    double med = reps % 2 ? per_eval[reps / 2] : 0.5 * (per_eval[reps / 2 - 1] + per_eval[reps / 2]);
    double checksum = 0;
    for (long k = 0; k < n_inst; k++) checksum += res_r[(size_t)k * (n + 1)];
    printf("{\"module\": \"%s\", \"n_inst\": %ld, \"num_nodes\": %u, \"reps\": %d, "
           "\"passes_per_rep\": %ld, \"s_per_eval_median\": %.6e, \"s_per_eval_min\": %.6e, "
           "\"evals_per_s_median\": %.6e, \"evals_per_s_max\": %.6e, \"fatal\": %u, "
           "\"checksum\": %.17g}\n",
           d->name, n_inst, n, reps, passes, med, per_eval[0], 1.0 / med, 1.0 / per_eval[0],
           fatal ? 1u : 0u, checksum);
    return 0;
}
