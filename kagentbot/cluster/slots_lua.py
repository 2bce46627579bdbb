"""The Lua scripts of the shared slot gate (kagentbot.cluster.slots): every change to the slots
happens inside one script, so replicas never see half a grant.

Keys under the gate's base key B (all one hash tag, so they live together in a Redis Cluster):
  B:holders  ZSET  holder id -> lease deadline (ms, Redis's clock)
  B:holder   HASH  holder id -> its chat
  B:holderch HASH  holder id -> its replica channel
  B:alive:R  STRING set while replica channel R lives: each of its scripts renews it (ARGV[5] ms)
  B:chats    HASH  chat -> slots held
  B:waiting  ZSET  waiter id -> lease deadline
  B:waiter   HASH  waiter id -> {k: kind, u: user, c: chat, s: since (ms), r: replica channel, t: turn}
  B:q:K:U    LIST  the waiters of user U for kind K, first come first
  B:ring:K   LIST  users with waiters of kind K, in turn (the served one goes to the back)
A grant publishes the waiter id on B:granted:R, R being the waiter's replica channel.
A waiter id becomes the holder id when granted. A replica that stops renewing B:alive:R (killed)
gets no more grants, and once the slots are all taken, those it holds are taken back: its
waiters and slots do not stall every replica for a whole lease."""

from __future__ import annotations

_PRELUDE = """
local B = KEYS[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function qkey(kind, user) return B .. ':q:' .. kind .. ':' .. user end
local function alive(channel) return redis.call('EXISTS', B .. ':alive:' .. channel) == 1 end
local function heartbeat(channel) redis.call('SET', B .. ':alive:' .. channel, 1, 'PX', tonumber(ARGV[5])) end
local function ring(kind) return B .. ':ring:' .. kind end

local function unqueue(id)
  redis.call('ZREM', B .. ':waiting', id)
  local raw = redis.call('HGET', B .. ':waiter', id)
  if not raw then return false end
  redis.call('HDEL', B .. ':waiter', id)
  local w = cjson.decode(raw)
  local q = qkey(w.k, w.u)
  redis.call('LREM', q, 1, id)
  if redis.call('LLEN', q) == 0 then redis.call('LREM', ring(w.k), 1, w.u) end
  return true
end

local function free(id)
  if redis.call('ZREM', B .. ':holders', id) == 0 then return false end
  local chat = redis.call('HGET', B .. ':holder', id) or ''
  redis.call('HDEL', B .. ':holder', id)
  redis.call('HDEL', B .. ':holderch', id)
  if redis.call('HINCRBY', B .. ':chats', chat, -1) <= 0 then redis.call('HDEL', B .. ':chats', chat) end
  return true
end

local function purge(now)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', B .. ':holders', '-inf', now)) do free(id) end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', B .. ':waiting', '-inf', now)) do unqueue(id) end
end

local function head(kind, user)
  local id = redis.call('LINDEX', qkey(kind, user), 0)
  return id, cjson.decode(redis.call('HGET', B .. ':waiter', id))
end

local function overdue(now, patience)
  local oldest = nil
  for _, user in ipairs(redis.call('LRANGE', ring('scheduled'), 0, -1)) do
    local _, w = head('scheduled', user)
    if oldest == nil or w.s < oldest then oldest = w.s end
  end
  return oldest ~= nil and now - oldest >= patience
end

-- the head of the first user's queue in turn whose chat is under its share; when every waiting
-- chat is at its share, the first in turn anyway (no slot stays idle)
local function pick_any(now, chat_cap, patience)
  local kinds = {'interactive', 'scheduled'}
  if overdue(now, patience) then kinds = {'scheduled', 'interactive'} end
  for pass = 1, 2 do
    for _, kind in ipairs(kinds) do
      for _, user in ipairs(redis.call('LRANGE', ring(kind), 0, -1)) do
        local id, w = head(kind, user)
        local held = tonumber(redis.call('HGET', B .. ':chats', w.c) or 0)
        if pass == 2 or held < chat_cap then return kind, user, id, w end
      end
    end
  end
  return nil
end

-- as pick_any, the waiters of a dead replica taken out of the line on the way
local function pick(now, chat_cap, patience)
  while true do
    local kind, user, id, w = pick_any(now, chat_cap, patience)
    if not kind or alive(w.r) then return kind, user, id, w end
    unqueue(id)
  end
end

-- all slots taken: take back those of dead replicas (only then: the holders are few)
local function reap()
  for _, id in ipairs(redis.call('ZRANGE', B .. ':holders', 0, -1)) do
    local channel = redis.call('HGET', B .. ':holderch', id)
    if channel and not alive(channel) then free(id) end
  end
end

local function grant(kind, user, id, w, deadline)
  local q = qkey(kind, user)
  redis.call('LPOP', q)
  redis.call('LREM', ring(kind), 1, user)
  if redis.call('LLEN', q) > 0 then redis.call('RPUSH', ring(kind), user) end
  redis.call('ZREM', B .. ':waiting', id)
  redis.call('HDEL', B .. ':waiter', id)
  redis.call('ZADD', B .. ':holders', deadline, id)
  redis.call('HSET', B .. ':holder', id, w.c)
  redis.call('HSET', B .. ':holderch', id, w.r)
  redis.call('HINCRBY', B .. ':chats', w.c, 1)
  redis.call('PUBLISH', B .. ':granted:' .. w.r, id)
end

-- ARGV[1..5]: capacity, chat cap, scheduled patience (ms), lease (ms), heartbeat (ms)
-- returns the waiters granted
local function dispatch(now)
  local capacity, chat_cap = tonumber(ARGV[1]), tonumber(ARGV[2])
  local patience, lease = tonumber(ARGV[3]), tonumber(ARGV[4])
  local granted = {}
  if redis.call('ZCARD', B .. ':holders') >= capacity and redis.call('ZCARD', B .. ':waiting') > 0 then reap() end
  while redis.call('ZCARD', B .. ':holders') < capacity and redis.call('ZCARD', B .. ':waiting') > 0 do
    local kind, user, id, w = pick(now, chat_cap, patience)
    if not kind then break end
    grant(kind, user, id, w, now + lease)
    granted[#granted + 1] = id
  end
  return granted
end
"""

# ARGV[6..11]: waiter id, kind, user, chat, turn, replica channel. Returns 1 when granted at once.
ACQUIRE = _PRELUDE + """
local now = now_ms()
heartbeat(ARGV[11])
purge(now)
local id, kind, user = ARGV[6], ARGV[7], ARGV[8]
local w = {k = kind, u = user, c = ARGV[9], t = ARGV[10], r = ARGV[11], s = now}
redis.call('HSET', B .. ':waiter', id, cjson.encode(w))
redis.call('ZADD', B .. ':waiting', now + tonumber(ARGV[4]), id)
if redis.call('RPUSH', qkey(kind, user), id) == 1 then redis.call('RPUSH', ring(kind), user) end
dispatch(now)
if redis.call('ZSCORE', B .. ':holders', id) then return 1 end
return 0
"""

# ARGV[6..7]: a waiter or holder id: out of the line, or its slot given back; then serve the
# next; the replica channel. Returns the waiters granted (the releasing replica wakes its own at
# once, not by pub/sub).
LEAVE = _PRELUDE + """
local now = now_ms()
heartbeat(ARGV[7])
unqueue(ARGV[6])
free(ARGV[6])
purge(now)
return dispatch(now)
"""

# ARGV[6]: the replica channel, alive; ARGV[7..]: its waiters and holders, all still alive: their
# leases renewed, the dead purged, free slots served. Returns for each id 1 when it holds a slot,
# 0 when it waits, -1 when Redis knows it no more (its lease ran out, or its replica was taken for
# dead).
TICK = _PRELUDE + """
local now = now_ms()
heartbeat(ARGV[6])
local deadline = now + tonumber(ARGV[4])
for i = 7, #ARGV do
  redis.call('ZADD', B .. ':holders', 'XX', deadline, ARGV[i])
  redis.call('ZADD', B .. ':waiting', 'XX', deadline, ARGV[i])
end
purge(now)
dispatch(now)
local states = {}
for i = 7, #ARGV do
  if redis.call('ZSCORE', B .. ':holders', ARGV[i]) then states[#states + 1] = 1
  elseif redis.call('ZSCORE', B .. ':waiting', ARGV[i]) then states[#states + 1] = 0
  else states[#states + 1] = -1 end
end
return states
"""

# ARGV[1]: a waiter id. How many waiters, on every replica, are served before it (-1: not waiting):
# the calls of kinds served first, those ahead in its own queue, and each other user's calls in
# the rounds before its own (once more for users before it in the ring).
POSITION = """
local B = KEYS[1]
local raw = redis.call('HGET', B .. ':waiter', ARGV[1])
if not raw then return -1 end
local w = cjson.decode(raw)
local function qkey(kind, user) return B .. ':q:' .. kind .. ':' .. user end
local index = redis.call('LPOS', qkey(w.k, w.u), ARGV[1])
if not index then return -1 end
local ahead = index
if w.k == 'scheduled' then
  for _, user in ipairs(redis.call('LRANGE', B .. ':ring:interactive', 0, -1)) do
    ahead = ahead + redis.call('LLEN', qkey('interactive', user))
  end
end
local ring = redis.call('LRANGE', B .. ':ring:' .. w.k, 0, -1)
local me = 0
for place, user in ipairs(ring) do if user == w.u then me = place end end
for place, user in ipairs(ring) do
  if user ~= w.u then
    local extra = 0
    if place < me then extra = 1 end
    ahead = ahead + math.min(redis.call('LLEN', qkey(w.k, user)), index + extra)
  end
end
return ahead
"""
