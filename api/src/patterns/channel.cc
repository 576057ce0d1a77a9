// placeholder until channel.cc lands
