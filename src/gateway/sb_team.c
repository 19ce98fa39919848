/* A desk's team (sb_team.h): the list an agent asks for and the presence
 * pushed to teammates, both read from the desk's routing state. */
#include "sb_team.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sb_desk.h"
#include "sb_error.h"

/* The desk an AGENT_LIST is about: the one named (an agent only one of
 * its own), else the asking agent's, else (an admin) the first. NULL with
 * *rc set when there is none the user may see. */
static const sb_desk_def *list_desk(const sb_desk *d, const sess *s,
                                    const char *want, int *rc)
{
    const sb_desk_def *def = NULL;
    bool agent = s->role == SBP__ROLE__ROLE_AGENT;
    if (want[0]) {
        def = sb_desk_get(d, want);
        if (!def || strcmp(def->id, want) != 0) {
            *rc = SB_E_NOT_FOUND;
            return NULL;
        }
    } else {
        def = agent ? sb_desk_of_agent(d, s->user_id) : sb_desk_get(d, "");
    }
    if (!def || (agent && !sb_desk_agent_on(d, def, s->user_id))) {
        *rc = SB_E_FORBIDDEN;
        return NULL;
    }
    return def;
}

/* The names of the groups in mask into out (at most SB_DESK_GROUPS_MAX);
 * returns how many. The strings are the desk's. */
static size_t group_names(const sb_desk *d, uint64_t mask, char **out)
{
    size_t n = 0;
    for (int g = 0; g < SB_DESK_GROUPS_MAX; g++)
        if (mask >> g & 1) out[n++] = (char *)sb_desk_group_name(d, g);
    return n;
}

static void on_agent_list(sb_gw *gw, sess *s, Sbp__Frame *f, conv *c, void *ud)
{
    (void)c;
    (void)ud;
    const sb_desk *d = gw->cfg.desk;
    int rc = d ? 0 : SB_E_NOT_FOUND;
    const sb_desk_def *def = d ? list_desk(d, s, f->agent_list->desk, &rc) : 0;
    if (!def) {
        sb__gw_error(gw, s, f->rid, rc);
        return;
    }
    size_t n_agents = 0, n = 0;
    sb_desk_agent_info ai;
    while (sb_desk_agent_at(d, n_agents, &ai))
        n_agents++;
    /* One allocation each for the agents, their pointers, and every group
     * name pointer (the desk's own strings). */
    Sbp__AgentInfo *infos = calloc(n_agents + 1, sizeof *infos);
    Sbp__AgentInfo **ptrs = calloc(n_agents + 1, sizeof *ptrs);
    char **names = calloc((n_agents + 1) * SB_DESK_GROUPS_MAX, sizeof *names);
    char *desk_groups[SB_DESK_GROUPS_MAX];
    if (!infos || !ptrs || !names) {
        sb__gw_error(gw, s, f->rid, -ENOMEM);
        goto out;
    }
    for (size_t i = 0; sb_desk_agent_at(d, i, &ai); i++) {
        if (!(ai.groups & def->groups)) continue;
        Sbp__AgentInfo *x = &infos[n];
        sbp__agent_info__init(x);
        x->user_id = (char *)ai.id;
        x->status = ai.status;
        x->load = ai.load;
        x->capacity = ai.capacity;
        x->groups = &names[n * SB_DESK_GROUPS_MAX];
        x->n_groups = group_names(d, ai.groups & def->groups, x->groups);
        ptrs[n++] = x;
    }
    Sbp__AgentListResp resp = SBP__AGENT_LIST_RESP__INIT;
    resp.desk = (char *)def->id;
    resp.agents = ptrs;
    resp.n_agents = n;
    resp.groups = desk_groups;
    resp.n_groups = group_names(d, def->groups, desk_groups);
    sb__gw_send(gw, s, f->rid, SBP__FRAME__BODY_AGENT_LIST_RESP, &resp);
out:
    free(infos);
    free(ptrs);
    free(names);
}

void sb__team_presence(sb_gw *gw, const char *agent, Sbp__AgentStatus st)
{
    const sb_desk *d = gw->cfg.desk;
    sb_desk_agent_info me, ai;
    if (!sb_desk_agent_find(d, agent, &me)) return;
    Sbp__AgentPresence p = SBP__AGENT_PRESENCE__INIT;
    p.user_id = (char *)me.id;
    p.status = st;
    /* Not to the agent itself: its session that just came is not
     * welcomed yet, and a status it sets is answered by AGENT_STATE. In a
     * cluster a teammate may have its sessions on another node. */
    bool everywhere = sb__gw_clustered(gw);
    for (size_t i = 0; sb_desk_agent_at(d, i, &ai); i++)
        if (ai.id != me.id && (everywhere || sb__gw_user_get(gw, ai.id)) &&
            sb_desk_same_desk(d, me.groups, ai.groups))
            sb__gw_send_user(gw, ai.id, SBP__FRAME__BODY_AGENT_PRESENCE, &p);
}

static const sb_gw_row ROWS[] = {
    /* The statuses and loads are the routing state's: in a cluster, the
     * desks' owner answers. */
    {.body = SBP__FRAME__BODY_AGENT_LIST,
     .flags = SB_GW_READY | SB_GW_DESK,
     .roles =
         SB_GW_ROLE(SBP__ROLE__ROLE_AGENT) | SB_GW_ROLE(SBP__ROLE__ROLE_ADMIN),
     .why = "agents and admins only",
     .handle = on_agent_list},
};

void sb__team_register(sb_gw *gw)
{
    sb__gw_handle(gw, ROWS, sizeof ROWS / sizeof *ROWS, NULL);
}
