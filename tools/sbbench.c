/* sbbench: the cs-chat load generator (DESIGN.md §7). A placeholder until
 * the real one is written on top of the client SDK (sb_client.h): it only
 * answers --help and --version, and otherwise says it is not there yet. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: sbbench [options]\n"
                   "The cs-chat load generator. Not yet implemented.\n");
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("sbbench %s\n", SB_VERSION);
            return 0;
        }
    }
    fprintf(stderr, "sbbench: not yet implemented\n");
    return 2;
}
