"""Getting accepted messages to their recipients: mailbox pull now, push delivery with retries later."""
