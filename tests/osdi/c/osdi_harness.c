/* Independent OSDI 0.5 evaluation path for va2jax's tests (test harness only, not shipped).
 *
 * Reads a script on stdin, dlopens the library, sets parameters, runs setup_model /
 * setup_instance, collapses nodes itself, loads Jacobians through the load_jacobian_* pointer
 * path (the Python side uses write_jacobian_array_*), and prints every result as C99 hex floats.
 *
 * Script tokens:
 *   LIB path | MOD index | TEMP kelvin | SIM n (name value)*n | SIMSTR n (name value|<empty>)*n
 *   MP id r|i|s value | IP id r|i|s value | OPVARS n id*n
 *   EVAL flags nv v*nv ns s*ns   (may repeat) | END
 */
#include <dlfcn.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { char **names; double *vals; char **names_str; char **vals_str; } SimParas;
typedef struct { SimParas paras; double abstime; double *prev_solve; double *prev_state;
                 double *next_state; uint32_t flags; } SimInfo;
typedef struct { uint32_t code; uint32_t param; } InitErr;
typedef struct { uint32_t flags; uint32_t num_errors; InitErr *errors; } InitInfo;
typedef struct { uint32_t a; uint32_t b; } Pair;
typedef struct { Pair nodes; uint32_t react_ptr_off; uint32_t flags; } JacEntry;
typedef struct { char *name; char *units; char *res_units; uint32_t o[4]; bool is_flow; } Node;
typedef struct { char **name; uint32_t num_alias; char *desc; char *units; uint32_t flags;
                 uint32_t len; } ParamOpvar;
typedef struct { char *name; uint32_t num_args; void *fn; } LimFn;

typedef struct {
  char *name;
  uint32_t num_nodes, num_terminals;
  Node *nodes;
  uint32_t num_jac;
  JacEntry *jac;
  uint32_t num_collapsible;
  Pair *collapsible;
  uint32_t collapsed_offset;
  void *noise_sources;
  uint32_t num_noise;
  uint32_t num_params, num_instance_params, num_opvars;
  ParamOpvar *param_opvar;
  uint32_t node_mapping_offset, jacobian_ptr_resist_offset;
  uint32_t num_states, state_idx_off;
  uint32_t bound_step_offset;
  uint32_t instance_size, model_size;
  void *(*access)(void *, void *, uint32_t, uint32_t);
  void (*setup_model)(void *, void *, SimParas *, InitInfo *);
  void (*setup_instance)(void *, void *, void *, double, uint32_t, SimParas *, InitInfo *);
  uint32_t (*eval)(void *, void *, void *, SimInfo *);
  void *load_noise;
  void (*load_residual_resist)(void *, void *, double *);
  void (*load_residual_react)(void *, void *, double *);
  void (*load_limit_rhs_resist)(void *, void *, double *);
  void (*load_limit_rhs_react)(void *, void *, double *);
  void *load_spice_rhs_dc, *load_spice_rhs_tran;
  void (*load_jacobian_resist)(void *, void *);
  void (*load_jacobian_react)(void *, void *, double);
  void *load_jacobian_tran;
  /* 0.4 / 0.5 tail: not used here */
} Desc;

static void log_cb(void *h, char *msg, uint32_t lvl) {
  fprintf(stderr, "model log (%u): %s\n", lvl, msg);
  if (!(lvl & 16)) free(msg);
}

/* SPICE3/ngspice junction limiting, written independently of the Python version. */
static double c_pnjlim(bool init, bool *chk, double vnew, double vold, double vt, double vcrit) {
  if (init) { *chk = true; return vcrit; }
  if (vnew > vcrit && fabs(vnew - vold) > 2.0 * vt) {
    *chk = true;
    if (vold > 0) {
      double a = 1.0 + (vnew - vold) / vt;
      return a > 0 ? vold + vt * log(a) : vcrit;
    }
    return vt * log(vnew / vt);
  }
  if (vnew < 0) {
    double lo = vold > 0 ? -vold - 1.0 : 2.0 * vold - 1.0;
    if (vnew < lo) { *chk = true; return lo; }
  }
  return vnew;
}

static double c_limitlog(bool init, bool *chk, double vnew, double vold, double tol) {
  if (init) { *chk = true; return 0.0; }
  if (vnew > vold + tol) { *chk = true; return vold + tol + log10((vnew - vold) / tol); }
  if (vnew < vold - tol) { *chk = true; return vold - tol - log10((vold - vnew) / tol); }
  return vnew;
}

static uint32_t uf[4096];
static uint32_t find(uint32_t x) { while (uf[x] != x) x = uf[x]; return x; }

static void pr(const char *tag, const double *v, size_t n) {
  printf("%s", tag);
  for (size_t i = 0; i < n; i++) printf(" %a", v[i]);
  printf("\n");
}

static void check_init(InitInfo *info, const char *what) {
  if (info->num_errors || (info->flags & 2)) {
    printf("INITERR %s %u\n", what, info->num_errors);
    exit(3);
  }
  free(info->errors);
}

int main(void) {
  char tok[4096];
  void *lib = NULL;
  Desc *d = NULL;
  unsigned midx = 0;
  double temp = 300.15;
  char *sim_names[64] = {0}, *str_names[16] = {0}, *str_vals[16] = {0};
  double sim_vals[64] = {0};
  SimParas sp = {sim_names, sim_vals, str_names, str_vals};
  char *model = NULL, *inst = NULL;
  int setup_done = 0;
  uint32_t opv_ids[4096];
  unsigned nopv = 0;
  double *mat_r = NULL, *mat_q = NULL, *solve = NULL, *rr = NULL;
  uint32_t *map = NULL;
  unsigned n = 0;

  while (scanf("%4095s", tok) == 1) {
    if (!strcmp(tok, "LIB")) {
      scanf("%4095s", tok);
      lib = dlopen(tok, RTLD_NOW | RTLD_LOCAL);
      if (!lib) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 2; }
      void **logp = (void **)dlsym(lib, "osdi_log");
      if (logp) *logp = (void *)log_cb;
      uint32_t *limlen = (uint32_t *)dlsym(lib, "OSDI_LIM_TABLE_LEN");
      LimFn *lim = (LimFn *)dlsym(lib, "OSDI_LIM_TABLE");
      if (limlen && lim)
        for (uint32_t k = 0; k < *limlen; k++) {
          if (!strcmp(lim[k].name, "pnjlim") && lim[k].num_args == 2) lim[k].fn = (void *)c_pnjlim;
          else if (!strcmp(lim[k].name, "limitlog") && lim[k].num_args == 1) lim[k].fn = (void *)c_limitlog;
          else { fprintf(stderr, "unsupported $limit %s\n", lim[k].name); return 2; }
        }
    } else if (!strcmp(tok, "MOD")) {
      scanf("%u", &midx);
      uint32_t dsize = *(uint32_t *)dlsym(lib, "OSDI_DESCRIPTOR_SIZE");
      d = (Desc *)((char *)dlsym(lib, "OSDI_DESCRIPTORS") + (size_t)dsize * midx);
      model = calloc(1, d->model_size + 8);
      inst = calloc(1, d->instance_size + 8);
      n = d->num_nodes;
    } else if (!strcmp(tok, "TEMP")) {
      scanf("%lf", &temp);
    } else if (!strcmp(tok, "SIM")) {
      unsigned k; scanf("%u", &k);
      for (unsigned i = 0; i < k; i++) {
        scanf("%4095s", tok); sim_names[i] = strdup(tok);
        scanf("%4095s", tok); sim_vals[i] = strtod(tok, NULL);
      }
      sim_names[k] = NULL;
    } else if (!strcmp(tok, "SIMSTR")) {
      unsigned k; scanf("%u", &k);
      for (unsigned i = 0; i < k; i++) {
        scanf("%4095s", tok); str_names[i] = strdup(tok);
        scanf("%4095s", tok); str_vals[i] = strdup(strcmp(tok, "<empty>") ? tok : "");
      }
      str_names[k] = NULL;
    } else if (!strcmp(tok, "MP") || !strcmp(tok, "IP")) {
      int is_inst = tok[0] == 'I';
      unsigned id; char ty[8];
      scanf("%u %7s %4095s", &id, ty, tok);
      void *p = d->access(is_inst ? inst : NULL, model, id, 1u | (is_inst ? 4u : 0u));
      if (!p) { fprintf(stderr, "access failed for %u\n", id); return 2; }
      if (ty[0] == 'r') *(double *)p = strtod(tok, NULL);
      else if (ty[0] == 'i') *(int32_t *)p = (int32_t)strtol(tok, NULL, 10);
      else *(char **)p = strdup(tok);
    } else if (!strcmp(tok, "OPVARS")) {
      scanf("%u", &nopv);
      for (unsigned i = 0; i < nopv; i++) scanf("%u", &opv_ids[i]);
    } else if (!strcmp(tok, "EVAL")) {
      unsigned flags, nv, ns;
      if (!setup_done) {
        InitInfo info = {0};
        d->setup_model((void *)"harness", model, &sp, &info);
        check_init(&info, "model");
        memset(&info, 0, sizeof info);
        d->setup_instance((void *)"harness", inst, model, temp, d->num_terminals, &sp, &info);
        check_init(&info, "instance");
        /* collapse: union-find, root = lowest index, ground (= n) wins */
        for (unsigned i = 0; i <= n; i++) uf[i] = i;
        bool *coll = (bool *)(inst + d->collapsed_offset);
        for (unsigned k = 0; k < d->num_collapsible; k++) {
          if (!coll[k]) continue;
          uint32_t a = d->collapsible[k].a, b = d->collapsible[k].b;
          if (a == UINT32_MAX) a = n;
          if (b == UINT32_MAX) b = n;
          uint32_t ra = find(a), rb = find(b);
          if (ra == rb) continue;
          if (ra == n || rb == n) uf[ra == n ? rb : ra] = n;
          else if (ra < rb) uf[rb] = ra;
          else uf[ra] = rb;
        }
        map = (uint32_t *)(inst + d->node_mapping_offset);
        for (unsigned i = 0; i < n; i++) map[i] = find(i);
        uint32_t *sidx = (uint32_t *)(inst + d->state_idx_off);
        for (unsigned i = 0; i < d->num_states; i++) sidx[i] = i;
        mat_r = calloc((n + 1) * (n + 1), sizeof(double));
        mat_q = calloc((n + 1) * (n + 1), sizeof(double));
        double **jp = (double **)(inst + d->jacobian_ptr_resist_offset);
        for (unsigned k = 0; k < d->num_jac; k++) {
          size_t pos = (size_t)map[d->jac[k].nodes.a] * (n + 1) + map[d->jac[k].nodes.b];
          jp[k] = mat_r + pos;
          if (d->jac[k].react_ptr_off != UINT32_MAX)
            *(double **)(inst + d->jac[k].react_ptr_off) = mat_q + pos;
        }
        solve = calloc(n + 1, sizeof(double));
        rr = calloc(n + 1, sizeof(double));
        setup_done = 1;
        printf("MAP");
        for (unsigned i = 0; i < n; i++) printf(" %u", map[i]);
        printf("\n");
      }
      scanf("%u %u", &flags, &nv);
      for (unsigned i = 0; i < nv; i++) { scanf("%4095s", tok); solve[i] = strtod(tok, NULL); }
      solve[n] = 0.0;
      scanf("%u", &ns);
      double *prev = calloc(ns + 1, sizeof(double)), *next = calloc(ns + 1, sizeof(double));
      for (unsigned i = 0; i < ns; i++) { scanf("%4095s", tok); prev[i] = strtod(tok, NULL); }
      SimInfo si = {sp, 0.0, solve, prev, next, flags};
      uint32_t ret = d->eval((void *)"harness", inst, model, &si);
      printf("RET %u\n", ret);
      memset(rr, 0, (n + 1) * sizeof(double)); d->load_residual_resist(inst, model, rr); pr("RR", rr, n);
      memset(rr, 0, (n + 1) * sizeof(double)); d->load_residual_react(inst, model, rr); pr("RQ", rr, n);
      memset(rr, 0, (n + 1) * sizeof(double)); d->load_limit_rhs_resist(inst, model, rr); pr("LR", rr, n);
      memset(rr, 0, (n + 1) * sizeof(double)); d->load_limit_rhs_react(inst, model, rr); pr("LQ", rr, n);
      memset(mat_r, 0, (n + 1) * (n + 1) * sizeof(double));
      memset(mat_q, 0, (n + 1) * (n + 1) * sizeof(double));
      d->load_jacobian_resist(inst, model);
      d->load_jacobian_react(inst, model, 1.0);
      printf("JR");
      for (unsigned i = 0; i < n; i++) for (unsigned j = 0; j < n; j++) printf(" %a", mat_r[i * (n + 1) + j]);
      printf("\nJQ");
      for (unsigned i = 0; i < n; i++) for (unsigned j = 0; j < n; j++) printf(" %a", mat_q[i * (n + 1) + j]);
      printf("\n");
      pr("NS", next, ns);
      printf("OP");
      for (unsigned i = 0; i < nopv; i++) {
        uint32_t fl = d->param_opvar[opv_ids[i]].flags & 3u;
        void *p = d->access(inst, model, opv_ids[i], 4u);
        double v = !p ? NAN : fl == 0 ? *(double *)p : fl == 1 ? (double)*(int32_t *)p : NAN;
        printf(" %a", v);
      }
      printf("\n");
      free(prev); free(next);
    } else if (!strcmp(tok, "END")) {
      break;
    }
  }
  fflush(stdout);
  return 0;
}
