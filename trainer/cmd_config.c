/* trainer/cmd_config.c: `cispo config [CONFIG] [section.key=value ...]` prints the effective
 * configuration (defaults, then the file, then the overrides) as YAML that loads back unchanged;
 * and cli_load_config, which every command uses to read its configuration. */
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "trainer/commands.h"

int cli_load_config(const char *cmd, int argc, char **argv, RunConfig *rc) {
    const char *path = NULL;
    int first = 0;
    if (argc > 0 && strchr(argv[0], '=') == NULL) {
        path = argv[0];
        first = 1;
    }
    for (int i = first; i < argc; i++) {
        if (strchr(argv[i], '=') == NULL) {
            fprintf(stderr, "cispo %s: unexpected argument '%s'\nHINT: usage: cispo %s [CONFIG] [section.key=value ...]\n",
                    cmd, argv[i], cmd);
            return 2;
        }
    }
    if (run_config_load(rc, path, argc - first, argv + first)) {
        fprintf(stderr, "cispo %s: %s\n", cmd, err_msg());
        return 2;
    }
    static const char *levels[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(rc->log_level, levels[i]) == 0) log_set_level((LogLevel)i);
    return 0;
}

int cmd_config(int argc, char **argv) {
    RunConfig rc;
    int st = cli_load_config("config", argc, argv, &rc);
    if (st) return st;
    run_config_print(stdout, &rc);
    return 0;
}
