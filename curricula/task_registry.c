/* curricula/task_registry.c: the list of built-in task families and lookup by name. The table is
 * constant (no registration at run time), so the order is fixed: it is the order `cispo` lists
 * families in and the order tests iterate.
 */
#include <string.h>

#include "curricula/task.h"
#include "curricula/task_internal.h"

static const TaskFamily *const k_families[] = {
    &task_family_add,  &task_family_mul,       &task_family_runsum, &task_family_sort,
    &task_family_caesar, &task_family_countdown, &task_family_sudoku4, &task_family_judge, NULL,
};

const TaskFamily *const *task_families(void) { return k_families; }

const TaskFamily *task_family_find(const char *name) {
    if (name == NULL) return NULL;
    for (int i = 0; k_families[i] != NULL; i++)
        if (strcmp(k_families[i]->name, name) == 0) return k_families[i];
    return NULL;
}
