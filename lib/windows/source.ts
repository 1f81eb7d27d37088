/** Header naming the events.raw partition and offset a record written out of the chain was made from ("3:1042"). */
export const SOURCE_HEADER = "devpipe-source";
