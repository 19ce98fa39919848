/* A desk's team as its agents see it: AGENT_LIST (the desk's agents with
 * their groups, status, load and capacity, and its skill groups: the
 * transfer picker of a workbench), and AGENT_PRESENCE, pushed to the
 * agents of a desk when a teammate's status changes. No I/O, like the
 * core. */
#ifndef SB_TEAM_H
#define SB_TEAM_H

#include "sb_gwcore.h"

/* Registers AGENT_LIST in gw's frame table. */
void sb__team_register(sb_gw *gw);

/* agent's status is now st (the desk's routing state has it): every ready
 * session of every other agent that shares a desk with it gets
 * AGENT_PRESENCE. Nothing when the desk does not know the agent. */
void sb__team_presence(sb_gw *gw, const char *agent, Sbp__AgentStatus st);

#endif
