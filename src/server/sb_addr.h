/* Peer addresses as the server shell judges them: the key its
 * per-address connection limit counts a peer under, and whether a peer is
 * on this machine. No I/O: the caller has the address (getpeername). */
#ifndef SB_ADDR_H
#define SB_ADDR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* The key the per-address limit counts a peer under: its IPv4 address
 * (also when mapped into IPv6) with bit 32 set, or its IPv6 /64, the block
 * one subscriber usually has. 0 for NULL or another family. */
uint64_t sb_addr_key(const struct sockaddr *sa);

/* True for 127.0.0.0/8 (also mapped into IPv6) and ::1. False for NULL. */
bool sb_addr_is_loopback(const struct sockaddr *sa);

#endif
