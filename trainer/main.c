/* trainer/main.c: the `cispo` command-line entry: dispatches to the subcommands. */
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/version.h"
#include "trainer/commands.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} Command;

static int cmd_version(int argc, char **argv) {
    (void)argc;
    (void)argv;
    printf("cispo %s\n", cispo_version());
    return 0;
}

static int cmd_help(int argc, char **argv);

static const Command commands[] = {
    {"train", cmd_train, "RL (CISPO | PPO | GRPO | DAPO), after SFT when rl.sft_first; --resume auto|DIR"},
    {"sft", cmd_sft, "supervised warm start on the tasks' worked solutions"},
    {"eval", cmd_eval, "held-out pass@1 / pass@k of a saved model: cispo eval CONFIG --model DIR"},
    {"ablate", cmd_ablate, "CISPO vs PPO/GRPO/DAPO from one SFT model: cispo ablate CONFIG --algos ... --seeds N [--jobs J]"},
    {"generate", cmd_generate, "sample from the policy on the decode path"},
    {"ckpt", cmd_ckpt, "cispo ckpt verify|inspect CHECKPOINT_DIR"},
    {"export-hf", cmd_export_hf, "cispo export-hf CHECKPOINT_DIR OUT_DIR: a Hugging Face model directory"},
    {"config", cmd_config, "print the effective configuration (defaults + CONFIG + overrides)"},
    {"version", cmd_version, "print the version and commit"},
    {"help", cmd_help, "this text"},
};
enum { N_COMMANDS = sizeof(commands) / sizeof(commands[0]) };

static int cmd_help(int argc, char **argv) {
    (void)argc;
    (void)argv;
    printf("cispo %s: RL training for long-reasoning language models (CISPO, PPO, GRPO, DAPO)\n\n"
           "usage: cispo COMMAND [CONFIG] [section.key=value ...]\n\ncommands:\n",
           cispo_version());
    for (int i = 0; i < N_COMMANDS; i++) printf("  %-10s %s\n", commands[i].name, commands[i].help);
    printf("\nCONFIG is a YAML file (default: built-in defaults; see configs/demo.yaml). Any key can be\n"
           "overridden on the command line, e.g. `cispo generate configs/demo.yaml generate.temperature=0`.\n"
           "`cispo config CONFIG` prints every key with its value and meaning.\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        cmd_help(0, NULL);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) return cmd_help(0, NULL);
    if (strcmp(name, "--version") == 0) return cmd_version(0, NULL);
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(name, commands[i].name) == 0) return commands[i].fn(argc - 2, argv + 2);
    int best = 0, bd = 1 << 30;
    for (int i = 0; i < N_COMMANDS; i++) {
        int d = config_edit_distance(name, commands[i].name);
        if (d < bd) bd = d, best = i;
    }
    fprintf(stderr, "cispo: unknown command '%s'", name);
    if (bd <= 3) fprintf(stderr, "; did you mean '%s'?", commands[best].name);
    fprintf(stderr, "\nHINT: cispo --help lists the commands\n");
    return 2;
}
