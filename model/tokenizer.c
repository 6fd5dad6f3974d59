/* model/tokenizer.c: choosing and releasing a run's tokenizer (tokenizer.h, chat_template.h):
 * the byte tokenizer or a tokenizer.json BPE, then the optional chat template. */
#include <stdlib.h>
#include <string.h>

#include "model/chat_template.h"
#include "model/tokenizer.h"

int tokenizer_open(Tokenizer *t, const char *path, const char *chat, const char *system) {
    int format, err = chat_format_parse(chat, &format);
    if (err) return err;
    if (!path || !path[0]) tokenizer_byte_init(t);
    else if ((err = tokenizer_bpe_load(t, path))) return err;
    if ((err = chat_template_attach(t, format, system))) tokenizer_free(t);
    return err;
}

void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    if (t->chat) free(t->chat->system);
    free(t->chat);
    if (t->release) t->release(t);
    memset(t, 0, sizeof(*t));
}
