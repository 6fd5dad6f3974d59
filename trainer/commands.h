/* trainer/commands.h: the `cispo` subcommands. Each takes the arguments after its name and
 * returns a process exit code (0 ok, 1 runtime failure, 2 bad usage or config). */
#ifndef CISPO_TRAINER_COMMANDS_H
#define CISPO_TRAINER_COMMANDS_H

#include "trainer/run_config.h"

int cmd_config(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_sft(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_ckpt(int argc, char **argv);
int cmd_export_hf(int argc, char **argv);
int cmd_ablate(int argc, char **argv);

/* Load a RunConfig from argv = [CONFIG] [section.key=value ...] (a first argument without '='
 * is the config file). Also applies run.log_level. On failure prints "cispo <cmd>: message" and
 * returns 2; otherwise 0. */
int cli_load_config(const char *cmd, int argc, char **argv, RunConfig *rc);

#endif
